"""Publishing against the real broker, sync and async side by side."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from typing import Any

import pika
import pytest
from django.conf import settings as django_settings
from django.test import override_settings

import rabbitbus
from rabbitbus.exceptions import BrokerConnectionError, ExchangeNotFound, Unroutable
from rabbitbus.transport import aio_connections, connections
from tests.broker import Broker


def get_one(broker: Broker, queue: str) -> tuple[Any, Any, bytes]:
    with broker.channel() as channel:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None, f"{queue} is empty"
    return method, properties, body


def assert_delivered_as_sent(broker: Broker, queue: str, message_id: str) -> None:
    method, properties, body = get_one(broker, queue)
    assert body == b'{"order":42,"total":"9.99"}'
    assert method.routing_key == "order.placed"
    assert properties.message_id == message_id
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.headers == {"tenant": "acme"}
    assert properties.type == "order.placed"
    assert properties.app_id == "rabbitbus-tests"
    assert properties.priority == 3
    assert properties.correlation_id == "corr-1"
    assert abs(properties.timestamp - time.time()) < 60


OPTIONS = {
    "headers": {"tenant": "acme"},
    "type": "order.placed",
    "priority": 3,
    "correlation_id": "corr-1",
}
PAYLOAD = {"order": 42, "total": "9.99"}


def test_publish_is_consumed_back_with_all_properties(
    broker: Broker, exchange: str, queue: str
) -> None:
    message_id = rabbitbus.publish(exchange, "order.placed", PAYLOAD, **OPTIONS)
    assert_delivered_as_sent(broker, queue, message_id)


async def test_apublish_is_consumed_back_with_all_properties(
    broker: Broker, exchange: str, queue: str
) -> None:
    message_id = await rabbitbus.apublish(exchange, "order.placed", PAYLOAD, **OPTIONS)
    await connections.aclose_all()
    assert_delivered_as_sent(broker, queue, message_id)


def test_unroutable_raises(exchange: str) -> None:
    with pytest.raises(Unroutable, match="no-such-key"):
        rabbitbus.publish(exchange, "no-such-key", {})


async def test_unroutable_raises_async(exchange: str) -> None:
    try:
        with pytest.raises(Unroutable, match="no-such-key"):
            await rabbitbus.apublish(exchange, "no-such-key", {})
    finally:
        await connections.aclose_all()


def test_missing_exchange_raises_and_the_next_publish_works(
    broker: Broker, exchange: str, queue: str
) -> None:
    with pytest.raises(ExchangeNotFound, match="no exchange"):
        rabbitbus.publish("no.such.exchange", "k", {})
    rabbitbus.publish(exchange, "k", {})
    assert broker.queue_depth(queue) == 1


async def test_missing_exchange_raises_and_the_next_apublish_works(
    broker: Broker, exchange: str, queue: str
) -> None:
    try:
        with pytest.raises(ExchangeNotFound, match="no exchange"):
            await rabbitbus.apublish("no.such.exchange", "k", {})
        await rabbitbus.apublish(exchange, "k", {})
    finally:
        await connections.aclose_all()
    assert broker.queue_depth(queue) == 1


def test_publish_after_the_broker_closed_the_connection(
    broker: Broker, exchange: str, queue: str
) -> None:
    rabbitbus.publish(exchange, "k", {"n": 1})
    broker.close_all_connections()  # the broker waits for a Close-Ok we never send while idle
    rabbitbus.publish(exchange, "k", {"n": 2})
    assert broker.queue_depth(queue) == 2
    assert connections.get_sync().reconnects == 1


async def test_apublish_after_the_broker_closed_the_connection(
    broker: Broker, exchange: str, queue: str
) -> None:
    try:
        await rabbitbus.apublish(exchange, "k", {"n": 1})
        await asyncio.to_thread(broker.close_all_connections)
        await rabbitbus.apublish(exchange, "k", {"n": 2})
    finally:
        await connections.aclose_all()
    assert broker.queue_depth(queue) == 2


async def test_closing_during_a_connect_leaves_no_connection_behind() -> None:
    conn = connections.get_async()
    connecting = asyncio.ensure_future(conn.get())
    await asyncio.sleep(0)  # the connect has begun
    await connections.aclose_all()
    with pytest.raises(BrokerConnectionError, match="closed while connecting"):
        await connecting
    assert conn.connection is None


async def test_a_publish_while_the_loops_connections_close_leaves_both_closed(
    broker: Broker, exchange: str, queue: str
) -> None:
    """A worker's heartbeat published a monitoring event while its runtime closed the
    loop's connections on SIGTERM: the loop got a new connection (and guard), the old
    guard was finalised and cleared the connections being closed ("dictionary changed
    size during iteration"), and the worker exited 1 instead of 0."""
    await rabbitbus.apublish(exchange, "k", {"n": 1})
    first = connections.get_async()

    async def publish_meanwhile() -> None:
        await asyncio.sleep(0)  # aclose_all is waiting for the broker's Close-Ok
        await rabbitbus.apublish(exchange, "k", {"n": 2})

    meanwhile = asyncio.ensure_future(publish_meanwhile())
    await connections.aclose_all()
    await meanwhile
    second = connections.get_async()
    assert second is not first
    assert first.closed and first.connection is None
    await connections.aclose_all()
    assert second.closed and second.connection is None
    assert broker.queue_depth(queue) == 2


def test_one_off_event_loops_leave_no_connection_behind(
    broker: Broker, exchange: str, queue: str
) -> None:
    """Async views under WSGI: every request runs in its own ``asyncio.run`` loop."""

    def request(n: int) -> None:
        asyncio.run(rabbitbus.apublish(exchange, "k", {"n": n}))

    for n in range(3):
        request(n)
    assert broker.queue_depth(queue) == 3
    assert sum(loop.is_closed() for loop in list(aio_connections._loops)) <= 1  # the last one
    assert broker.wait_for(lambda: not broker.connection_names(), timeout=10)


def test_loops_in_many_threads_at_once_each_get_their_connection() -> None:
    """Async views under WSGI run one-off loops in many threads at once: a thread adding
    its loop while another dropped the closed ones raised "dictionary changed size during
    iteration" (seen in an RPC server's runtime beside the test's callers)."""
    errors: list[BaseException] = []

    async def view() -> None:
        connections.get_async()  # made, not connected: the registry is what is tested

    def requests() -> None:
        try:
            for _ in range(150):
                asyncio.run(view())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=requests) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


def test_idle_connection_past_its_heartbeat_is_reopened(
    broker: Broker, exchange: str, queue: str
) -> None:
    options = {"URL": django_settings.TEST_URL, "HEARTBEAT": 1}
    with override_settings(RABBITBUS={"CONNECTIONS": {"default": options}}):
        rabbitbus.publish(exchange, "k", {"n": 1})
        time.sleep(3.5)  # three heartbeats without any I/O: the broker drops us
        rabbitbus.publish(exchange, "k", {"n": 2})
        assert connections.get_sync().reconnects == 1
    assert broker.queue_depth(queue) == 2


def test_publish_many_reports_each_message(broker: Broker, exchange: str, queue: str) -> None:
    batch = [rabbitbus.Message(exchange, "ok", {"i": i}) for i in range(500)]
    batch.insert(250, rabbitbus.Message(exchange, "lost", {}, mandatory=True, message_id="bad"))
    with broker.channel() as channel:
        channel.queue_unbind(queue, exchange, "#")
        channel.queue_bind(queue, exchange, "ok")
    result = rabbitbus.publish_many(batch)
    assert len(result.confirmed) == 500
    assert set(result.failed) == {"bad"}
    assert isinstance(result.failed["bad"], Unroutable)
    assert broker.queue_depth(queue) == 500


async def test_apublish_many_confirms_every_message(
    broker: Broker, exchange: str, queue: str
) -> None:
    try:
        result = await rabbitbus.apublish_many(
            [rabbitbus.Message(exchange, "k", {"i": i}) for i in range(2000)]
        )
    finally:
        await connections.aclose_all()
    assert result.ok and len(result.confirmed) == 2000
    assert broker.queue_depth(queue) == 2000


def test_threads_each_own_a_connection(broker: Broker, exchange: str, queue: str) -> None:
    seen: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(1000):
                rabbitbus.publish(exchange, "k", {"i": i})
            seen.append(id(connections.get_sync().connection))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(set(seen)) == 8
    assert broker.queue_depth(queue) == 8000


def test_message_id_given_is_kept(broker: Broker, exchange: str, queue: str) -> None:
    given = uuid.uuid4().hex
    assert rabbitbus.publish(exchange, "k", {}, message_id=given) == given
    assert get_one(broker, queue)[1].message_id == given


def test_transient_messages_are_marked_so(broker: Broker, exchange: str, queue: str) -> None:
    rabbitbus.publish(exchange, "k", {}, persistent=False)
    assert get_one(broker, queue)[1].delivery_mode == 1


def test_expiration_drops_unconsumed_messages(broker: Broker, exchange: str, queue: str) -> None:
    rabbitbus.publish(exchange, "k", {}, expiration=0.05)
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 0, timeout=5)


def test_pika_is_not_used_for_a_connection_per_message(
    broker: Broker, exchange: str, queue: str
) -> None:
    opened = []
    original = pika.BlockingConnection.__init__

    def counting(self: pika.BlockingConnection, *args: Any, **kwargs: Any) -> None:
        opened.append(1)
        original(self, *args, **kwargs)

    pika.BlockingConnection.__init__ = counting  # type: ignore[method-assign]
    try:
        for _ in range(20):
            rabbitbus.publish(exchange, "k", {})
    finally:
        pika.BlockingConnection.__init__ = original  # type: ignore[method-assign]
    assert len(opened) == 1


def failover_settings() -> override_settings:
    dead = "amqp://guest:guest@127.0.0.1:1/"
    urls = [dead, django_settings.TEST_URL]
    return override_settings(RABBITBUS={"CONNECTIONS": {"default": {"URLS": urls}}})


def test_failover_skips_a_dead_node(broker: Broker, exchange: str, queue: str) -> None:
    with failover_settings():
        rabbitbus.publish(exchange, "k", {})
    assert broker.queue_depth(queue) == 1


async def test_async_failover_skips_a_dead_node(broker: Broker, exchange: str, queue: str) -> None:
    with failover_settings():
        try:
            await rabbitbus.apublish(exchange, "k", {})
        finally:
            await connections.aclose_all()
    assert broker.queue_depth(queue) == 1


def test_connection_name_shows_in_the_broker(broker: Broker, exchange: str) -> None:
    with override_settings(
        RABBITBUS={
            "CONNECTIONS": {
                "default": {"URL": django_settings.TEST_URL, "CONNECTION_NAME": "shop-web-7"}
            }
        }
    ):
        connections.get_sync().get()
        assert any('"shop-web-7"' in line for line in broker.connection_names())


def test_a_missing_exchange_fails_only_its_own_messages_in_a_batch(
    broker: Broker, exchange: str, queue: str
) -> None:
    batch = [rabbitbus.Message(exchange, "k", {"i": i}) for i in range(100)]
    batch.insert(50, rabbitbus.Message("no.such.exchange", "k", {}, message_id="lost"))
    result = rabbitbus.publish_many(batch)
    assert set(result.failed) == {"lost"}
    assert isinstance(result.failed["lost"], ExchangeNotFound)
    assert len(result.confirmed) == 100
    # Messages sent before the bad one lost their confirms with the channel and
    # were sent again: duplicates are allowed (at-least-once), losses are not.
    assert 100 <= broker.queue_depth(queue) <= 150


@pytest.mark.parametrize("bad_first", [True, False])
def test_a_missing_exchange_fails_only_its_own_message_sync_and_async(
    bad_first: bool, exchange: str, queue: str
) -> None:
    """The broker closes the channel over the bad message, dropping the good one unless
    already confirmed: both paths send the good one again (confirm timing varies: rounds)."""
    batch = [
        rabbitbus.Message("no.such.exchange", "x", {}, message_id="lost"),
        rabbitbus.Message(exchange, "plain.x", {"n": 2}, message_id="kept"),
    ]
    batch = batch if bad_first else batch[::-1]

    async def apublished() -> rabbitbus.PublishResult:
        try:
            return await rabbitbus.apublish_many(batch)
        finally:
            await connections.aclose_all()

    for _ in range(5):
        for result in (rabbitbus.publish_many(batch), asyncio.run(apublished())):
            assert result.confirmed == ["kept"], result
            assert set(result.failed) == {"lost"}
            assert isinstance(result.failed["lost"], ExchangeNotFound)


def test_meanwhile_runs_once_the_message_is_on_the_broker_and_before_the_confirm(
    broker: Broker, exchange: str, queue: str
) -> None:
    """``publish(meanwhile=...)`` lets a caller overlap its own work (rabbitbus.tasks' READY
    row) with the confirm's round trip: when it runs, the message has left the process.
    Here it waits for the broker to count the message in its queue, which it could never
    see if it ran while the message sat in pika's buffer (this thread drives pika's I/O)."""
    from rabbitbus.conf import settings

    seen: list[int] = []

    def meanwhile() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and broker.queue_depth(queue) == 0:
            time.sleep(0.01)
        seen.append(broker.queue_depth(queue))

    message_id = rabbitbus.publish(
        exchange, "order.placed", PAYLOAD, meanwhile=meanwhile, **OPTIONS
    )
    # FAST_PATHS off: pika's public channel waits for each confirm as it publishes, so
    # meanwhile runs before the message is sent (nothing to overlap with).
    assert seen == ([1] if settings.FAST_PATHS else [0])
    assert_delivered_as_sent(broker, queue, message_id)


def test_meanwhile_runs_once_even_when_the_publish_is_sent_again() -> None:
    """After a lost connection the unconfirmed messages are sent again; the caller's
    ``meanwhile`` is not run again with them."""
    from rabbitbus.publishing import _once

    calls: list[int] = []
    once = _once(lambda: calls.append(1))
    assert once is not None
    once()
    once()
    assert calls == [1]
    assert _once(None) is None
