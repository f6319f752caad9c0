"""rabbitbus.testing.capture: every publish path recorded, no broker involved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import TestCase

import rabbitbus
from rabbitbus import outbox, publishing, rpc
from rabbitbus.exceptions import NoRoute, RemoteError, RpcTimeout
from rabbitbus.messages import Message
from rabbitbus.outbox import on_commit
from rabbitbus.outbox.bridges import Bridge
from rabbitbus.rpc import client as rpc_client
from rabbitbus.testing import Capture, capture_published
from tests.testapp.models import Order
from tests.testapp.rabbit import OutOfStock

#: Nothing listens here: a publish that reached a broker would fail (no such vhost route).
EXCHANGE = "nowhere"


@pytest.fixture
def published() -> Iterator[Capture]:
    with capture_published() as capture:
        yield capture


def test_publish_is_recorded_with_payload_headers_and_properties(published: Capture) -> None:
    message_id = rabbitbus.publish(
        EXCHANGE, "order.placed", {"id": 7}, headers={"h": 1}, correlation_id="c-1", type="t"
    )
    [message] = published
    assert (message.exchange, message.routing_key, message.payload) == (
        EXCHANGE,
        "order.placed",
        {"id": 7},
    )
    assert message.headers == {"h": 1}
    assert message.message_id == message_id
    assert message.correlation_id == "c-1"
    assert message.content_type == "application/json"
    assert message.properties["type"] == "t"


def test_publish_many_and_apublish_paths_are_recorded(published: Capture) -> None:
    result = rabbitbus.publish_many([Message(EXCHANGE, "a", 1), Message(EXCHANGE, "b", 2)])
    assert result.ok and len(result.confirmed) == 2

    async def publish_async() -> None:
        await rabbitbus.apublish(EXCHANGE, "c", 3)
        await rabbitbus.apublish_many([Message(EXCHANGE, "d", 4)])

    asyncio.run(publish_async())
    assert published.routing_keys == ["a", "b", "c", "d"]
    assert published.payloads == [1, 2, 3, 4]


def test_hooks_are_removed_after_the_block() -> None:
    with capture_published():
        assert publishing.interceptor is not None
        assert rpc_client.interceptor is not None
    assert publishing.interceptor is None
    assert rpc_client.interceptor is None


def test_nested_captures_restore_the_outer_one() -> None:
    with capture_published() as outer:
        with capture_published() as inner:
            rabbitbus.publish(EXCHANGE, "inner")
        rabbitbus.publish(EXCHANGE, "outer")
    assert inner.routing_keys == ["inner"]
    assert outer.routing_keys == ["outer"]


def test_filter_by_exchange_routing_key_and_payload(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "order.placed", {"id": 1, "total": 5})
    rabbitbus.publish(EXCHANGE, "order.paid", {"id": 1})
    rabbitbus.publish("other", "order.placed", {"id": 2})
    assert published.filter(exchange=EXCHANGE).routing_keys == ["order.placed", "order.paid"]
    assert published.filter(routing_key="order.placed").payloads == [
        {"id": 1, "total": 5},
        {"id": 2},
    ]
    assert len(published.filter(payload_includes={"total": 5})) == 1


def test_assert_published_returns_the_match(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "order.placed", {"id": 1, "lines": [{"sku": "X"}]})
    found = published.assert_published(routing_key="order.placed", payload_includes={"id": 1})
    assert found.payload["lines"] == [{"sku": "X"}]
    published.assert_published(count=1, exchange=EXCHANGE)


def test_assert_published_failure_lists_what_was_published(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "order.paid", {"id": 1})
    with pytest.raises(AssertionError) as failure:
        published.assert_published(routing_key="order.placed", payload={"id": 1})
    text = str(failure.value)
    assert "No message published matching routing_key='order.placed', payload={'id': 1}" in text
    assert 'publish nowhere [order.paid] {"id": 1}' in text


def test_assert_published_count_mismatch_says_how_many(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "a")
    rabbitbus.publish(EXCHANGE, "a")
    with pytest.raises(AssertionError, match="2 messages, not 1, published matching"):
        published.assert_published(count=1, routing_key="a")


def test_assert_not_published_failure_shows_the_offenders(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "order.placed", {"id": 3})
    published.assert_not_published(routing_key="order.cancelled")
    with pytest.raises(AssertionError, match=r"but:\nPublished \(1\):\n  1\. publish nowhere"):
        published.assert_not_published(routing_key="order.placed")


def test_unknown_criterion_is_a_type_error(published: Capture) -> None:
    with pytest.raises(TypeError, match="Unknown criteria"):
        published.filter(routing="a")


def test_rpc_request_is_recorded_and_stub_answers(published: Capture) -> None:
    published.stub_rpc("catalog.quote", returns={"total": "9.50"})
    assert rpc.call("catalog.quote", {"X": 1}, timeout=3) == {"total": "9.50"}
    request = published.assert_published(kind="rpc", routing_key="rpc.catalog.quote")
    assert request.payload == {"args": [{"X": 1}], "kwargs": {}}
    assert request.properties["reply_to"] == rpc.DIRECT_REPLY_TO
    assert request.correlation_id


def test_unstubbed_rpc_has_no_route(published: Capture) -> None:
    with pytest.raises(NoRoute):
        rpc.call("nobody.home")


def test_rpc_stub_errors_cross_as_on_the_wire(published: Capture) -> None:
    published.stub_rpc("stock", raises=OutOfStock("sku X"))
    published.stub_rpc("other", raises=KeyError)
    with pytest.raises(OutOfStock, match="sku X"):
        rpc.call("stock")
    with pytest.raises(RemoteError):
        asyncio.run(rpc.acall("other"))


def test_rpc_stub_delay_past_timeout_times_out(published: Capture) -> None:
    published.stub_rpc("slow", returns=1, delay=5)
    with pytest.raises(RpcTimeout):
        rpc.call("slow", timeout=2)
    assert rpc.call("slow", timeout=10) == 1


@pytest.mark.django_db
def test_publish_on_commit_records_only_after_commit(
    published: Capture, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        rabbitbus.publish_on_commit(EXCHANGE, "later", {"n": 1})
        assert len(published) == 0
    published.assert_published(routing_key="later", payload={"n": 1})


@pytest.mark.django_db(transaction=True)
def test_publish_on_commit_rolled_back_records_nothing(published: Capture) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        on_commit.publish_on_commit(EXCHANGE, "never")
        raise ZeroDivisionError
    published.assert_not_published(routing_key="never")


@pytest.mark.django_db(transaction=True)
def test_bridge_on_commit_is_recorded(published: Capture) -> None:
    bridge = Bridge(exchange=EXCHANGE, model=Order, routing_key="order.{event}")
    bridge.connect()
    try:
        Order.objects.create(number="A-1")
    finally:
        bridge.disconnect()
    published.assert_published(routing_key="order.created", payload_includes={"number": "A-1"})


@pytest.mark.django_db
def test_outbox_rows_are_written_not_relayed(published: Capture) -> None:
    outbox.enqueue(EXCHANGE, "boxed", {"n": 1})
    assert len(published) == 0
    published.outbox().assert_published(kind="outbox", routing_key="boxed", payload={"n": 1})
    assert published.relay_outbox() == 1
    published.assert_published(kind="publish", routing_key="boxed")
    assert len(published.outbox()) == 0


@pytest.mark.django_db
def test_the_criteria_see_pending_outbox_rows_as_kind_outbox_only(published: Capture) -> None:
    """docs/testing.md lists ``kind="outbox"`` among the criteria: a pending row matches
    it, and only it (the row is not published yet)."""
    rabbitbus.publish(EXCHANGE, "sent", {"n": 0})
    outbox.enqueue(EXCHANGE, "boxed", {"n": 1})
    row = published.assert_published(kind="outbox", routing_key="boxed", payload={"n": 1})
    assert row.kind == "outbox"
    assert published.filter(kind="outbox").routing_keys == ["boxed"]
    published.assert_published(kind="outbox", count=1)
    published.assert_not_published(routing_key="boxed")  # no kind: what was sent
    published.assert_not_published(kind="publish", routing_key="boxed")
    assert published.filter(routing_key="boxed").routing_keys == []
    with pytest.raises(AssertionError, match=r"outbox nowhere \[boxed\]"):
        published.assert_not_published(kind="outbox")
    with pytest.raises(AssertionError, match=r"(?s)kind='outbox'.*publish nowhere \[sent\]"):
        published.assert_published(kind="outbox", routing_key="sent")
    published.relay_outbox()
    published.assert_not_published(kind="outbox")
    published.assert_published(kind="publish", routing_key="boxed")


@pytest.mark.django_db
def test_relay_outbox_option_relays_before_each_read() -> None:
    with capture_published(relay_outbox=True) as published:
        outbox.enqueue(EXCHANGE, "boxed")
        published.assert_published(routing_key="boxed")


class CaptureInTestCase(TestCase):
    """The same helpers in a ``django.test.TestCase``, with its transaction."""

    def test_on_commit_with_capture_on_commit_callbacks(self) -> None:
        published = self.enterContext(capture_published())
        with self.captureOnCommitCallbacks(execute=True):
            rabbitbus.publish_on_commit(EXCHANGE, "order.placed", {"id": 1})
        published.assert_published(routing_key="order.placed", payload={"id": 1})


def test_filter_by_headers_and_properties(published: Capture) -> None:
    rabbitbus.publish(EXCHANGE, "k", 1, headers={"tenant": "a", "v": 2}, type="order.placed")
    rabbitbus.publish(EXCHANGE, "k", 2, headers={"tenant": "b"})
    assert published.filter(headers_include={"tenant": "a"}).payloads == [1]
    assert published.filter(type="order.placed").payloads == [1]
    published.assert_not_published(headers_include={"tenant": "c"})
