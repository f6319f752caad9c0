"""Publishing through a misbehaving network (the fault proxy), broker untouched."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus.exceptions import BrokerUnavailable
from rabbitbus.transport import connections
from tests.broker import Broker, rabbitbus_through
from tests.consuming import drain
from tests.fault_proxy import FaultProxy


def through(proxy: FaultProxy, **options: object) -> override_settings:
    return override_settings(RABBITBUS=rabbitbus_through(proxy.port, **options))


def delivered_ids(broker: Broker, queue: str) -> list[str]:
    return [message.message_id for message in drain(broker, queue)]


def test_idle_publisher_behind_a_black_hole_publishes_transparently(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy
) -> None:
    with through(proxy, HEARTBEAT=1):
        rabbitbus.publish(exchange, "k", {"n": 1})
        proxy.blackhole()
        time.sleep(3)  # idle, with the connection silently dead
        proxy.pass_through()
        rabbitbus.publish(exchange, "k", {"n": 2})
        assert connections.get_sync().reconnects == 1
    assert broker.queue_depth(queue) == 2


def test_connection_reset_before_a_publish_is_absorbed(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy
) -> None:
    with through(proxy):
        rabbitbus.publish(exchange, "k", {"n": 1})
        proxy.reset_all()
        rabbitbus.publish(exchange, "k", {"n": 2})
    assert broker.queue_depth(queue) == 2


@pytest.mark.parametrize("cut", [2**n for n in range(5, 15)])
def test_cut_at_any_byte_offset_loses_nothing(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy, cut: int
) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    with through(proxy):
        proxy.cut_next(cut)
        batch = [rabbitbus.Message(exchange, "k", {"i": i, "pad": "x" * 100}) for i in range(200)]
        started = time.monotonic()
        result = rabbitbus.publish_many(batch)
        assert time.monotonic() - started < 15
        connections.close_all()
    assert proxy.stats["connections"] >= 2  # the cut happened and we reconnected
    assert result.ok, result.failed
    assert set(result.confirmed) <= set(delivered_ids(broker, queue))  # duplicates allowed
    assert abs(len(os.listdir("/proc/self/fd")) - fds) <= 5


@pytest.mark.parametrize("cut", [2**n for n in range(5, 15)])
async def test_async_cut_at_any_byte_offset_loses_nothing(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy, cut: int
) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    with through(proxy):
        proxy.cut_next(cut)
        batch = [rabbitbus.Message(exchange, "k", {"i": i, "pad": "x" * 100}) for i in range(200)]
        try:
            result = await asyncio.wait_for(rabbitbus.apublish_many(batch), timeout=15)
        finally:
            await connections.aclose_all()
    assert proxy.stats["connections"] >= 2
    assert result.ok, result.failed
    assert set(result.confirmed) <= set(await asyncio.to_thread(delivered_ids, broker, queue))
    assert abs(len(os.listdir("/proc/self/fd")) - fds) <= 5


async def test_async_publisher_reset_logs_no_traceback(
    broker: Broker,
    exchange: str,
    queue: str,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A web process's connection lost to the network: one WARNING, no driver traceback."""
    caplog.set_level(logging.DEBUG)
    with through(proxy):
        # aio-pika notices, logs and reconnects within the pause
        await publish_across(exchange, outage=proxy.reset_all, pause=1.5)
    assert proxy.stats["connections"] >= 2
    assert await asyncio.to_thread(broker.queue_depth, queue) == 2
    assert_one_loss_logged(caplog)


async def test_async_outage_logs_one_warning_not_one_per_reconnect_attempt(
    broker: Broker,
    exchange: str,
    queue: str,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def outage() -> None:
        proxy.refuse(True)
        proxy.reset_all()

    with through(proxy):
        # aio-pika tries again every second of the pause
        await publish_across(exchange, outage, pause=3.5, end=lambda: proxy.refuse(False))
    assert await asyncio.to_thread(broker.queue_depth, queue) == 2
    retries = [r for r in caplog.records if r.name == "aio_pika.robust_connection"]
    assert len([r for r in retries if "failed" in str(r.msg)]) >= 2  # the outage lasted
    assert_one_loss_logged(caplog)


async def publish_across(
    exchange: str, outage: Callable[[], None], pause: float, end: Callable[[], None] | None = None
) -> None:
    """``apublish`` once, cause ``outage``, wait ``pause`` seconds, ``end`` it, publish again."""
    try:
        await rabbitbus.apublish(exchange, "k", {"n": 1})
        outage()
        await asyncio.sleep(pause)
        if end is not None:
            end()
        await rabbitbus.apublish(exchange, "k", {"n": 2})
    finally:
        await connections.aclose_all()


def assert_one_loss_logged(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING (ours, no traceback) for the lost connection, and an INFO once it is back."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in loud if r.exc_info], [(r.name, r.msg) for r in loud]
    assert [(r.name, r.msg) for r in loud] == [
        ("rabbitbus.transport.connections", "Connection %r lost (%s: %s) on node %s; reconnecting")
    ]
    ours = [r.getMessage() for r in caplog.records if r.name == "rabbitbus.transport.connections"]
    assert ours[0].startswith("Connection 'default' lost (")
    # The node lost and the node taken: the proxy's, the only one.
    node = ours[0].split(" on node ")[1].split(";")[0]
    assert node.startswith("127.0.0.1:")
    assert ours[-1] == f"Connection 'default' re-established on node {node}"


def test_unreachable_broker_raises_within_the_reconnect_window(proxy: FaultProxy) -> None:
    proxy.refuse(True)
    with through(proxy, RECONNECT_TIMEOUT=1):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="not reachable") as raised:
            rabbitbus.publish("x", "k", {})
        assert time.monotonic() - started < 1 + 2
    # One reconnect window, not a second one around the first.
    assert "(BrokerUnavailable" not in str(raised.value), raised.value


async def test_async_unreachable_broker_fails_within_the_reconnect_window(
    proxy: FaultProxy,
) -> None:
    proxy.refuse(True)
    with through(proxy, RECONNECT_TIMEOUT=1):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="not reachable") as raised:
            await rabbitbus.apublish("x", "k", {})
        assert time.monotonic() - started < 1 + 2
        await connections.aclose_all()
    assert "(BrokerUnavailable" not in str(raised.value), raised.value
