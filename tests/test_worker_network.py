"""Consumer workers through a misbehaving network (the fault proxy), broker untouched.

RELIABILITY.md F4 (a cut at every byte offset) and F6 (TCP resets) for the worker:
every message is processed at least once, the worker stays up and stays quiet, no
wait is unbounded, and file descriptors come back to their baseline. The worker
consumes through the proxy; the test publishes straight to the broker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.test import override_settings

from rabbitbus import publish_many
from rabbitbus.messages import Message, ReceivedMessage
from tests.broker import Broker, rabbitbus_through, unique
from tests.fault_proxy import FaultProxy
from tests.workers import ThreadWorker, spec

OFFSETS = [2**n for n in range(5, 15)]
PAD = "x" * 300  # ~450 bytes a delivery: 50 of them outlast the largest offset


class Seen:
    """Handlers, sync and async, that record the ids they processed."""

    def __init__(self) -> None:
        self.ids: set[str | None] = set()
        self.lock = threading.Lock()

    def sync(self, message: ReceivedMessage) -> None:
        time.sleep(0.001)
        with self.lock:
            self.ids.add(message.message_id)

    async def async_(self, message: ReceivedMessage) -> None:
        await asyncio.sleep(0.001)  # a few in flight when the connection dies
        self.ids.add(message.message_id)

    def handler(self, kind: str) -> Callable[[ReceivedMessage], object]:
        return self.sync if kind == "sync" else self.async_


def fd_count() -> int:
    """Open file descriptors, after a garbage collection: a socket of a connection that
    died mid-handshake may sit in a reference cycle until the collector runs (that is
    not a leak; one that survives a collection is)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def through_proxy(proxy: FaultProxy) -> Iterator[None]:
    """The worker's connections go through ``proxy``; beats are rare (one announce at start)."""
    rabbitbus = {**rabbitbus_through(proxy.port), "WORKER": {"HEARTBEAT_INTERVAL": 3600}}
    with override_settings(RABBITBUS=rabbitbus):
        yield


def publish_direct(queue: str, count: int) -> set[str]:
    batch = [Message("", queue, {"n": n, "pad": PAD}) for n in range(count)]
    result = publish_many(batch, connection="direct")
    assert result.ok, result.failed
    return set(result.confirmed)


def consuming_worker(broker: Broker, proxy: FaultProxy, kind: str, seen: Seen) -> ThreadWorker:
    """A started worker whose consumer and publisher connections are both up."""
    queue = unique(f"wn.{kind}")
    consumer = spec(queue, seen.handler(kind), prefetch=20, concurrency=4)
    worker = ThreadWorker(consumer).start(broker)
    assert broker.wait_for(lambda: proxy.stats["active"] == 2, timeout=20)
    return worker


def assert_alive(worker: ThreadWorker) -> None:
    assert worker.thread.is_alive() and worker.error is None, worker.error


def cut_while_consuming(
    broker: Broker, proxy: FaultProxy, worker: ThreadWorker, seen: Seen, cut: int, count: int
) -> None:
    """Drop the worker's connections; its reconnection is cut after ``cut`` bytes."""
    queue = worker.specs[0].queue
    proxy.cut_next(cut)
    proxy.drop_all()  # the consumer reconnects at once, the publisher after 1 s
    ids = publish_direct(queue, count)
    assert broker.wait_for(lambda: seen.ids >= ids, timeout=30), (
        f"cut at {cut}: {len(ids - seen.ids)} of {count} never processed"
    )
    assert_alive(worker)


def run_cuts(broker: Broker, proxy: FaultProxy, kind: str, iterations: int, count: int) -> None:
    fds, seen = fd_count(), Seen()
    with consuming_worker(broker, proxy, kind, seen) as worker:
        for cut in OFFSETS:
            for _ in range(iterations):
                cut_while_consuming(broker, proxy, worker, seen, cut, count)
        assert worker.runtime is not None
        assert worker.runtime.reconnects >= len(OFFSETS) * iterations
        assert broker.wait_for(lambda: broker.consumers(worker.specs[0].queue) == 1, timeout=20)
    assert broker.wait_for(lambda: abs(fd_count() - fds) <= 5, timeout=10), (fds, fd_count())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cut_at_every_byte_offset_loses_nothing(
    broker: Broker, proxy: FaultProxy, through_proxy: None, kind: str
) -> None:
    run_cuts(broker, proxy, kind, iterations=1, count=50)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_soak_forty_cuts_at_every_byte_offset(
    broker: Broker, proxy: FaultProxy, through_proxy: None, kind: str
) -> None:
    run_cuts(broker, proxy, kind, iterations=40, count=200)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_resets_mid_stream_lose_nothing_and_log_one_warning_each(
    broker: Broker,
    proxy: FaultProxy,
    through_proxy: None,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    resets, seen = 3, Seen()
    caplog.set_level(logging.INFO)
    with consuming_worker(broker, proxy, kind, seen) as worker:
        runtime = worker.runtime
        assert runtime is not None
        ids = publish_direct(worker.specs[0].queue, 600)
        for number in range(1, resets + 1):
            progress = 100 * number
            assert broker.wait_for(lambda p=progress: runtime.ready and len(seen.ids) >= p, 30)
            proxy.reset_all()
            assert broker.wait_for(lambda n=number: runtime.reconnects >= n, timeout=30)
        assert broker.wait_for(lambda: seen.ids >= ids, timeout=60)
        assert_alive(worker)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    lost = [r for r in warnings if r.getMessage().startswith("Connection lost")]
    assert len(lost) == resets, [r.getMessage() for r in warnings]
    assert len(warnings) <= 2 * resets, [r.getMessage() for r in warnings]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_black_hole_is_noticed_by_heartbeats_and_unacked_work_comes_back(
    broker: Broker, proxy: FaultProxy, kind: str
) -> None:
    """F5: the network silently drops everything (half-open TCP) while handlers hold
    unacked messages. With a 2 s heartbeat the worker declares the connection dead
    within 2 x (2 + 5) s, reconnects once the network is back, and the messages it held
    come back marked redelivered and are processed."""
    release, seen = threading.Event(), Seen()
    redelivered: set[str | None] = set()

    def hold(message: ReceivedMessage) -> None:
        if message.redelivered:
            redelivered.add(message.message_id)
        elif message.body["n"] < 4:
            release.wait(30)  # in flight when the network goes
        seen.sync(message)

    async def ahold(message: ReceivedMessage) -> None:
        await asyncio.to_thread(hold, message)

    options = {"HEARTBEAT": 2, "CONNECTION_TIMEOUT": 2}
    rabbitbus = {**rabbitbus_through(proxy.port, **options), "WORKER": {"HEARTBEAT_INTERVAL": 3600}}
    queue = unique(f"wn.hole.{kind}")
    consumer = spec(queue, hold if kind == "sync" else ahold, prefetch=20, concurrency=8)
    with override_settings(RABBITBUS=rabbitbus), ThreadWorker(consumer).start(broker) as worker:
        runtime = worker.runtime
        assert runtime is not None
        ids = publish_direct(queue, 10)
        assert broker.wait_for(lambda: len(seen.ids) == 6, timeout=10)  # 4 held, 6 done
        proxy.blackhole()
        assert broker.wait_for(lambda: not runtime.ready, timeout=2 * (2 + 5))
        release.set()  # their acks go nowhere: the broker gives the four back
        proxy.pass_through()
        assert broker.wait_for(lambda: runtime.ready and runtime.reconnects >= 1, timeout=10 + 2)
        assert broker.wait_for(lambda: seen.ids >= ids, timeout=20)
        assert_alive(worker)
    assert len(redelivered) == 4 and redelivered <= ids


def test_a_long_outage_is_waited_out_with_capped_backoff_and_few_lines(
    broker: Broker, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """F13, shortened: the broker is unreachable for 12 s (connections refused). The
    worker stays up, retries with capped backoff at one line per attempt, and consumes
    the backlog once the broker is back, within the cap (2 s here) and 5 s."""
    caplog.set_level(logging.INFO)
    seen = Seen()
    rabbitbus = {
        **rabbitbus_through(proxy.port, CONNECTION_TIMEOUT=2),
        "WORKER": {"HEARTBEAT_INTERVAL": 3600, "RECONNECT_MAX_DELAY": 2},
    }
    queue = unique("wn.outage")
    with (
        override_settings(RABBITBUS=rabbitbus),
        ThreadWorker(spec(queue, seen.sync)).start(broker) as worker,
    ):
        runtime = worker.runtime
        assert runtime is not None
        proxy.refuse(True)
        proxy.reset_all()
        ids = publish_direct(queue, 50)  # the backlog
        time.sleep(12)
        attempts = [r for r in caplog.records if r.getMessage().startswith("Broker unreachable")]
        assert 3 <= len(attempts) <= 12 / 0.5 / 2  # backing off, at most one line per attempt
        assert not seen.ids
        proxy.refuse(False)
        assert broker.wait_for(lambda: seen.ids >= ids, timeout=2 + 5)
        assert_alive(worker)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
