"""Publishing through a misbehaving network (the fault proxy), broker untouched."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus import connections
from rabbitbus.exceptions import BrokerUnavailable
from tests.broker import Broker, rabbitbus_through
from tests.fault_proxy import FaultProxy


def through(proxy: FaultProxy, **options: object) -> override_settings:
    return override_settings(RABBITBUS=rabbitbus_through(proxy.port, **options))


def delivered_ids(broker: Broker, queue: str) -> list[str]:
    ids = []
    with broker.channel() as channel:
        for method, properties, _body in channel.consume(
            queue, auto_ack=True, inactivity_timeout=0.5
        ):
            if method is None:
                break
            ids.append(properties.message_id)
    return ids


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
        try:
            await rabbitbus.apublish(exchange, "k", {"n": 1})
            proxy.reset_all()
            await asyncio.sleep(1.5)  # aio-pika notices, logs and reconnects
            await rabbitbus.apublish(exchange, "k", {"n": 2})
        finally:
            await connections.aclose_all()
    assert proxy.stats["connections"] >= 2
    assert await asyncio.to_thread(broker.queue_depth, queue) == 2
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in loud if r.exc_info], [(r.name, r.msg) for r in loud]
    assert [(r.name, r.getMessage().split(" (")[0]) for r in loud] == [
        ("rabbitbus.connections", "Connection 'default' lost")
    ]
    ours = [r.getMessage() for r in caplog.records if r.name == "rabbitbus.connections"]
    assert "Connection 'default' re-established" in ours


async def test_async_outage_logs_one_warning_not_one_per_reconnect_attempt(
    broker: Broker,
    exchange: str,
    queue: str,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with through(proxy):
        try:
            await rabbitbus.apublish(exchange, "k", {"n": 1})
            proxy.refuse(True)
            proxy.reset_all()
            await asyncio.sleep(3.5)  # aio-pika tries again every second
            proxy.refuse(False)
            await rabbitbus.apublish(exchange, "k", {"n": 2})
        finally:
            await connections.aclose_all()
    assert await asyncio.to_thread(broker.queue_depth, queue) == 2
    retries = [r for r in caplog.records if r.name == "aio_pika.robust_connection"]
    assert len([r for r in retries if "failed" in str(r.msg)]) >= 2  # the outage lasted
    loud = [(r.name, r.msg) for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [("rabbitbus.connections", "Connection %r lost (%s: %s); reconnecting")]
    ours = [r.getMessage() for r in caplog.records if r.name == "rabbitbus.connections"]
    assert ours[-1] == "Connection 'default' re-established"


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
