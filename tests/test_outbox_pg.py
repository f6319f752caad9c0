"""The relay on PostgreSQL: concurrent relays, a killed relay, order, NOTIFY wake-up.

Run with ``pytest --ds=tests.settings_pg -m postgres``. The consumer here is
the test's own: it drains the queue with raw pika and applies one ``Effect``
per distinct message id (idempotent by message id).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from rabbitbus import outbox
from rabbitbus.messages import Message
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox.relay import Relay
from tests.broker import Broker
from tests.consuming import Delivered, drain, drain_until
from tests.testapp.models import Effect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent


def apply_effects(delivered: list[Delivered]) -> None:
    """The idempotent consumer: one Effect per message id, however often it arrived."""
    seen = set(Effect.objects.values_list("message_id", flat=True))
    fresh = {m.message_id for m in delivered} - seen
    Effect.objects.bulk_create([Effect(consumer="test", message_id=i) for i in fresh])


def pending() -> int:
    return OutboxMessage.objects.exclude(status="sent").count()


def wait_until_sent(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending() == 0


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    """Start relays in threads (``start(n, **options)``); stopped afterwards."""
    stop = threading.Event()
    started: list[Relay] = []
    threads: list[threading.Thread] = []

    def start(count: int, **options: object) -> list[Relay]:
        for _ in range(count):
            relay = Relay(options=options)
            thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
            thread.start()
            started.append(relay)
            threads.append(thread)
        return started

    yield start  # type: ignore[misc]
    stop.set()
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads)


def test_two_relays_publish_10000_rows_once_each(
    relays: object, broker: Broker, exchange: str, queue: str
) -> None:
    ids = outbox.enqueue_many(Message(exchange, "order.placed", {"n": n}) for n in range(10_000))
    started = relays(2, BATCH_SIZE=500)  # type: ignore[operator]
    wait_until_sent(90)
    delivered = drain_until(broker, queue, 10_000, timeout=60)
    apply_effects(delivered)
    assert Effect.objects.count() == 10_000
    assert {m.message_id for m in delivered} == set(ids)
    # SKIP LOCKED: no row is claimed by both relays. Only a confirm timeout under load
    # (the row is released and sent again) may add duplicates: at most one batch.
    assert 10_000 <= len(delivered) <= 10_500
    assert 10_000 <= sum(relay.published for relay in started) <= 10_500


def start_hanging_relay(batch_size: int, claim_timeout: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_pg_child",
        "RABBITBUS_TEST_CLAIM_TIMEOUT": str(claim_timeout),
    }
    command = [sys.executable, "-m", "tests.hanging_relay", str(batch_size)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    found: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if needle in line:
                found.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"relay never printed {needle!r}"
    return found[0]


def test_a_relay_killed_between_publish_and_mark_is_covered_after_the_claim_timeout(
    broker: Broker, exchange: str, queue: str
) -> None:
    ids = outbox.enqueue_many(Message(exchange, "order.placed", {"n": n}) for n in range(250))
    process = start_hanging_relay(batch_size=100, claim_timeout=5)
    try:
        assert "published 100" in wait_for_line(process, "hanging before mark")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    relay = Relay(options={"BATCH_SIZE": 1000})
    assert relay.run_once() == 150  # the dead relay's 100 stay claimed until the timeout
    assert OutboxMessage.objects.filter(status="pending").count() == 100
    time.sleep(5.2)
    assert relay.run_once() == 100
    delivered = drain_until(broker, queue, 350)
    apply_effects(delivered)
    counts = Counter(m.message_id for m in delivered)
    assert set(counts) == set(ids)
    assert sorted(Counter(counts.values()).items()) == [(1, 150), (2, 100)]
    assert Effect.objects.count() == 250


def test_two_relays_keep_the_order_of_each_aggregate(
    relays: object, broker: Broker, exchange: str, queue: str
) -> None:
    for seq in range(25):
        for order in range(20):
            outbox.enqueue(
                exchange, "order.event", {"order": order, "seq": seq}, aggregate=f"o{order}"
            )
    relays(2, BATCH_SIZE=7, POLL_INTERVAL=0.01)  # type: ignore[operator]
    wait_until_sent(60)
    delivered = drain(broker, queue)
    assert len(delivered) == 500
    for order in range(20):
        seqs = [m.payload["seq"] for m in delivered if m.payload["order"] == order]
        assert seqs == list(range(25)), order


def test_notify_wakes_an_idle_relay_at_once(
    relays: object, broker: Broker, exchange: str, queue: str
) -> None:
    relays(1, IDLE_INTERVAL=60.0, POLL_INTERVAL=60.0)  # type: ignore[operator]
    time.sleep(1)  # the relay is now blocked in LISTEN for up to 60 s
    outbox.local_wakeup.clear()
    message_id = outbox.enqueue(exchange, "order.placed", {})
    assert [m.message_id for m in drain_until(broker, queue, 1, timeout=10)] == [message_id]
