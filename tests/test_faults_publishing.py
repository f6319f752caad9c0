"""Node-wide faults during publishing. Marked ``fault``: run serially, last."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

import rabbitbus
from rabbitbus.exceptions import BrokerBlocked, PublishTimeout
from rabbitbus.messages import Message
from rabbitbus.transport import connections
from tests.broker import Broker, unique
from tests.consuming import drain
from tests.workers import ThreadWorker, spec

pytestmark = pytest.mark.fault

FAST = {"URL": "", "PUBLISH_TIMEOUT": 3, "BLOCKED_CONNECTION_TIMEOUT": 4, "RECONNECT_TIMEOUT": 20}


def fast_settings() -> dict[str, object]:
    return {"CONNECTIONS": {"default": {**FAST, "URL": django_settings.TEST_URL}}}


@pytest.mark.parametrize("alarm", ["memory_alarm", "disk_alarm"])
def test_an_alarm_makes_publish_raise_in_time_while_consumers_go_on(
    broker: Broker, exchange: str, queue: str, alarm: str
) -> None:
    """F8/F9: publishing blocked node-wide by a memory or disk alarm raises in time, a
    worker keeps consuming meanwhile, and publishing works again after."""
    seen: list[object] = []
    backlog = unique("fp.backlog")
    consumer = spec(backlog, lambda message: seen.append(message.body["n"]), prefetch=10)
    with override_settings(RABBITBUS=fast_settings()):
        rabbitbus.publish(exchange, "k", {"before": True})
        with ThreadWorker(consumer).start(broker):
            pass  # its queue declared, empty
        assert rabbitbus.publish_many([Message("", backlog, {"n": n}) for n in range(20)]).ok
        with getattr(broker, alarm)():
            started = time.monotonic()
            with pytest.raises((BrokerBlocked, PublishTimeout)):
                rabbitbus.publish(exchange, "k", {"during": True})
            assert time.monotonic() - started < 4 + 1
            assert connections.get_sync().blocked  # the broker said so (connection.blocked)
            with ThreadWorker(consumer).start(broker):
                assert broker.wait_for(lambda: len(seen) == 20, timeout=20)
        rabbitbus.publish(exchange, "k", {"after": True})
    assert sorted(seen) == list(range(20))  # type: ignore[type-var]
    # The blocked message's outcome was unknown: it may have been stored.
    assert broker.wait_for(lambda: broker.queue_depth(queue) in (2, 3))


@pytest.fixture
def quorum_queue(broker: Broker, exchange: str) -> Iterator[str]:
    """A durable quorum queue bound to ``exchange`` with ``#``."""
    name = unique("fp.quorum")
    with broker.channel() as channel:
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(name, exchange, "#")
    yield name
    with broker.channel() as channel:
        channel.queue_delete(name)


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    ("fault", "marks"),
    [("restart_app", (2000, 6000)), ("crash", (5000,))],
    ids=["F1-restart-twice", "F3-sigkill"],
)
def test_node_faults_mid_publish_lose_no_confirmed_message(
    broker: Broker, exchange: str, quorum_queue: str, fault: str, marks: tuple[int, ...]
) -> None:
    """F1/F3: 10,000 persistent 400-byte messages published one by one to a quorum queue;
    the node is restarted at #2,000 and #6,000, or SIGKILLed at #5,000. Every publish
    returns confirmed (the library resends what was unconfirmed once the node is back),
    and every confirmed message is in the queue afterwards."""
    count = 10_000
    confirmed: list[str] = []
    failed: dict[int, BaseException] = {}
    reconnects: list[int] = []

    def publish_all() -> None:
        for n in range(count):
            try:
                confirmed.append(rabbitbus.publish(exchange, "k", {"n": n, "pad": "x" * 370}))
            except Exception as exc:  # noqa: BLE001 - the ledger is the point
                failed[n] = exc
        reconnects.append(connections.get_sync().reconnects)

    settings = {"CONNECTIONS": {"default": {**FAST, "URL": django_settings.TEST_URL}}}
    settings["CONNECTIONS"]["default"]["RECONNECT_TIMEOUT"] = 120  # type: ignore[index]
    started = time.monotonic()
    with override_settings(RABBITBUS=settings):
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        try:
            for mark in marks:
                assert broker.wait_for(lambda m=mark: len(confirmed) >= m, timeout=60)
                getattr(broker, fault)()
            assert len(confirmed) < count  # the faults hit mid-run
        finally:
            publisher.join(300)
    assert not publisher.is_alive()
    assert time.monotonic() - started < 120
    assert failed == {}
    assert reconnects == [len(marks)]
    assert len(set(confirmed)) == count
    stored = stored_ids(broker, quorum_queue)
    assert set(confirmed) <= stored  # 0 confirmed lost (duplicates of unknown outcomes allowed)
    assert len(stored) == count


def stored_ids(broker: Broker, queue: str) -> set[str]:
    return {message.message_id for message in drain(broker, queue, idle=1)}


def test_publish_survives_a_broker_restart(broker: Broker, exchange: str, queue: str) -> None:
    with override_settings(RABBITBUS=fast_settings()):
        rabbitbus.publish(exchange, "k", {"n": 0})
        broker.restart_app()
        rabbitbus.publish(exchange, "k", {"n": 1})
        assert connections.get_sync().reconnects == 1
    assert broker.queue_depth(queue) == 2


@pytest.mark.timeout(400)
async def test_async_publishing_through_closes_and_a_restart_loses_no_confirmed_message(
    broker: Broker, exchange: str, quorum_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    """F2: 10,000 messages through ``apublish_many`` in batches of 200 (a 200-confirm
    window); the broker closes the connection at #2,000, #4,000 and #6,000 and restarts
    at #8,000. Every message is confirmed, none is lost, no batch hangs."""
    caplog.set_level(logging.INFO)
    count, window = 10_000, 200
    confirmed: list[str] = []
    failed: dict[str, BaseException] = {}
    slowest = 0.0
    close, restart = broker.close_all_connections, broker.restart_app
    faults = {2000: close, 4000: close, 6000: close, 8000: restart}
    settings = {"CONNECTIONS": {"default": {**FAST, "URL": django_settings.TEST_URL}}}
    settings["CONNECTIONS"]["default"]["RECONNECT_TIMEOUT"] = 120  # type: ignore[index]
    with override_settings(RABBITBUS=settings):
        try:
            for first in range(0, count, window):
                batch = [
                    Message(exchange, "k", {"n": n, "pad": "x" * 370})
                    for n in range(first, first + window)
                ]
                started = time.monotonic()
                publishing = asyncio.ensure_future(rabbitbus.apublish_many(batch))
                if first in faults:  # while the batch's confirms are outstanding
                    await asyncio.to_thread(faults[first])
                result = await publishing
                slowest = max(slowest, time.monotonic() - started)
                confirmed.extend(result.confirmed)
                failed.update(result.failed)
        finally:
            await connections.aclose_all()
    assert failed == {}
    assert len(set(confirmed)) == count
    assert slowest < 30  # a batch across the restart waits for it; none hangs (aio-pika#636)
    ours = [r.getMessage() for r in caplog.records if r.name == "rabbitbus.transport.connections"]
    back = [line for line in ours if line.startswith("Connection 'default' re-established on node")]
    assert len(back) >= 4, ours
    stored = await asyncio.to_thread(stored_ids, broker, quorum_queue)
    assert set(confirmed) <= stored
    assert len(stored) == count


async def test_apublish_survives_a_broker_restart(
    broker: Broker, exchange: str, queue: str
) -> None:
    with override_settings(RABBITBUS=fast_settings()):
        try:
            await rabbitbus.apublish(exchange, "k", {"n": 0})
            await asyncio.to_thread(broker.restart_app)
            await rabbitbus.apublish(exchange, "k", {"n": 1})
        finally:
            await connections.aclose_all()
    assert broker.queue_depth(queue) == 2
