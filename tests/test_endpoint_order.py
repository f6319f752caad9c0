"""The order in which a process tries the nodes of ``URLS`` (connections.endpoint_order)."""

from __future__ import annotations

import pytest

from rabbitbus.conf.connection import parse_connection
from rabbitbus.transport import connections

URLS = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5681, 5682, 5683)]


def test_one_process_uses_one_order_of_all_its_nodes() -> None:
    cs = parse_connection("default", {"URLS": URLS})
    order = connections.endpoint_order(cs)
    assert sorted(endpoint.port for endpoint in order) == [5681, 5682, 5683]
    assert connections.endpoint_order(parse_connection("other", {"URLS": URLS[::-1]})) == order
    assert [p.port for p in connections.pika_parameters(cs)] == [e.port for e in order]


def test_processes_spread_over_the_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    cs = parse_connection("default", {"URLS": URLS})
    firsts = set()
    for pid in range(100_000, 100_030):  # thirty processes (a fork reseeds by pid)
        monkeypatch.setattr(connections.os, "getpid", lambda pid=pid: pid)
        firsts.add(connections.endpoint_order(cs)[0].port)
    assert firsts == {5681, 5682, 5683}


def test_a_single_url_is_its_own_order() -> None:
    cs = parse_connection("default", {"URL": URLS[1]})
    assert connections.endpoint_order(cs) == cs.endpoints
