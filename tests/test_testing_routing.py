"""rabbitbus.testing.routing: RabbitMQ's routing rules, as pure functions."""

from __future__ import annotations

import pytest

from rabbitbus.exceptions import ExchangeNotFound
from rabbitbus.testing.routing import headers_match, route, topic_matches
from rabbitbus.topology import Binding, Exchange, Queue, Topology


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("order.placed", "order.placed", True),
        ("order.placed", "order.paid", False),
        ("order.*", "order.placed", True),
        ("order.*", "order", False),
        ("order.*", "order.placed.eu", False),
        ("order.#", "order", True),
        ("order.#", "order.placed.eu", True),
        ("#", "anything.at.all", True),
        ("#", "", True),
        ("*.placed", "order.placed", True),
        ("#.eu", "order.placed.eu", True),
        ("#.eu", "order.placed.us", False),
        ("order.#.eu", "order.eu", True),
        ("*", "", False),  # "" is no words, not one empty word
        ("", "", True),
        ("a..b", "a..b", True),
        ("*.*", "order", False),
    ],
)
def test_topic_patterns(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_headers_all_needs_every_key_and_ignores_x_keys() -> None:
    binding = {"x-match": "all", "format": "pdf", "type": "report", "x-note": "ignored"}
    assert headers_match(binding, {"format": "pdf", "type": "report"})
    assert not headers_match(binding, {"format": "pdf"})
    assert not headers_match(binding, {"format": "pdf", "type": "log"})


def test_headers_any_needs_one_key_and_all_is_the_default() -> None:
    assert headers_match({"x-match": "any", "a": 1, "b": 2}, {"b": 2})
    assert not headers_match({"x-match": "any", "a": 1}, {"b": 2})
    assert not headers_match({"a": 1, "b": 2}, {"b": 2})


def topology() -> Topology:
    known = Topology()
    known.add(
        Exchange("events", type="topic"),
        Exchange("fan", type="fanout"),
        Exchange("direct", type="direct", arguments={"alternate-exchange": "fan"}),
        Queue("q1"),
        Queue("q2"),
        Binding("q1", "events", "order.*"),
        Binding("q2", "events", "#"),
        Binding("q2", "fan", "ignored"),
        Binding("q1", "direct", "exact"),
    )
    return known


def test_route_by_exchange_type() -> None:
    known = topology()
    assert route(known, "events", "order.placed", {}) == ["q1", "q2"]
    assert route(known, "events", "stock.low", {}) == ["q2"]
    assert route(known, "fan", "whatever", {}) == ["q2"]
    assert route(known, "direct", "exact", {}) == ["q1"]


def test_default_exchange_routes_to_the_named_queue() -> None:
    assert route(topology(), "", "q1", {}) == ["q1"]
    assert route(topology(), "", "missing", {}) == []


def test_alternate_exchange_takes_the_unroutable() -> None:
    assert route(topology(), "direct", "nope", {}) == ["q2"]


def test_missing_exchange_raises_as_the_broker() -> None:
    with pytest.raises(ExchangeNotFound, match="no exchange 'nope'"):
        route(topology(), "nope", "key", {})


def test_built_in_exchanges_exist() -> None:
    assert route(topology(), "amq.topic", "order.placed", {}) == []
