"""Group commit (``@consumer(transaction="batch")``): one transaction per batch, each
effect applied once, only the culprit retried or dead-lettered."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from rabbitbus import publish_many
from rabbitbus.consuming import batching, dispatch
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import Reject
from rabbitbus.messages import Delivery, Message, ReceivedMessage
from rabbitbus.runtime.threads import Threads
from tests.broker import Broker
from tests.workers import spawn_worker


def raw(message_id: str, body: bytes = b'{"n": 1}') -> Delivery:
    return Delivery(
        body=body,
        headers={},
        exchange="",
        routing_key="q",
        message_id=message_id,
        redelivered=False,
        content_type="application/json",
        content_encoding=None,
    )


@pytest.mark.django_db(transaction=True)
def test_deliveries_in_hand_run_in_one_transaction_and_a_failure_splits_the_batch() -> None:
    seen: list[tuple[str, bool]] = []

    def handler(message: ReceivedMessage) -> None:
        seen.append((message.message_id or "", connection.in_atomic_block))
        if message.body.get("poison"):
            raise Reject("poison")

    spec = ConsumerSpec(name="b", handler=handler, queue="q", prefetch=10, transaction="batch")
    threads = Threads(1, "test-batch")
    one_by_one: list[str] = []

    async def alone(delivery: Delivery) -> dispatch.Outcome:
        one_by_one.append(delivery.message_id or "")
        return await dispatch.dispatch(spec, delivery, threads)

    async def deliver(batch: list[Delivery]) -> list[dispatch.Outcome | None]:
        batcher = batching.Batcher(spec, threads, alone, lambda: False)
        outcomes = await asyncio.gather(*(batcher.submit(delivery) for delivery in batch))
        assert batcher.counts == ({"batches": 1, "split": 0} if not one_by_one else
                                  {"batches": 0, "split": 1})  # fmt: skip
        return outcomes

    try:
        clean = asyncio.run(deliver([raw(f"a{n}") for n in range(10)]))
        assert [o.action for o in clean if o] == [dispatch.ACK] * 10
        assert seen == [(f"a{n}", True) for n in range(10)] and one_by_one == []
        seen.clear()
        mixed = [raw(f"b{n}") for n in range(5)] + [raw("poison", b'{"poison": true}')]
        mixed += [raw("not json", b"{")]
        outcomes = asyncio.run(deliver(mixed))
    finally:
        threads.shutdown()
    assert [o.action for o in outcomes if o] == [dispatch.ACK] * 5 + [dispatch.DEAD_LETTER] * 2
    # the batch ran to the poison and rolled back, then each message alone
    assert one_by_one == ["not json", "b0", "b1", "b2", "b3", "b4", "poison"]


@pytest.mark.django_db(transaction=True)
def test_a_many_handler_takes_each_batch_s_new_messages_at_once() -> None:
    calls: list[list[str]] = []

    def handler(messages: list[ReceivedMessage]) -> None:
        assert connection.in_atomic_block
        calls.append([message.message_id or "" for message in messages])
        if any(message.body.get("poison") for message in messages):
            raise Reject("poison")

    spec = ConsumerSpec(
        name="many", handler=handler, queue="q", prefetch=10, transaction="batch",
        many=True, idempotent=True,
    )  # fmt: skip
    threads = Threads(1, "test-many")

    async def deliver(batch: list[Delivery]) -> list[dispatch.Outcome | None]:
        alone = functools.partial(dispatch.dispatch, spec, threads=threads)
        batcher = batching.Batcher(spec, threads, alone, lambda: False)
        return await asyncio.gather(*(batcher.submit(delivery) for delivery in batch))

    try:
        first = asyncio.run(deliver([raw(f"a{n}") for n in range(5)]))
        again = asyncio.run(deliver([raw("a1"), raw("a9"), raw("a3")]))
        mixed = asyncio.run(deliver([raw("b0"), raw("poison", b'{"poison": true}'), raw("b1")]))
    finally:
        threads.shutdown()
    assert [(o.action, o.duplicate) for o in first if o] == [(dispatch.ACK, False)] * 5
    assert [o.duplicate for o in again if o] == [True, False, True]
    assert [o.action for o in mixed if o] == [dispatch.ACK, dispatch.DEAD_LETTER, dispatch.ACK]
    # one call per batch, duplicates left out; the poisoned batch again, a message at a time
    assert calls == [
        ["a0", "a1", "a2", "a3", "a4"], ["a9"],
        ["b0", "poison", "b1"], ["b0"], ["poison"], ["b1"],
    ]  # fmt: skip


def effects(db_path: Path) -> list[str]:
    """The effects ledger: one row per time the handler's transaction committed."""
    if not db_path.exists() and db_path.name == POSTGRES:
        from tests.testapp.models import Effect

        return list(Effect.objects.filter(consumer="batch").values_list("message_id", flat=True))
    with sqlite3.connect(db_path, timeout=20) as db:
        return [row[0] for row in db.execute("SELECT message_id FROM testapp_effect")]


#: ``db_path`` standing for the PostgreSQL test database (tests/test_worker_batch_pg.py).
POSTGRES = "postgres"


#: The batch consumer's handler: one message per call, or the batch's messages at once.
HANDLERS = pytest.mark.parametrize("handler", ["each", "many"])


def start(
    workers: list, broker: Broker, prefix: str, db_path: Path, handler: str = "each"
) -> subprocess.Popen:
    env = {"RABBITBUS_TEST_BATCH": handler}
    if db_path.name == POSTGRES:
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings_pg_child"
    process = spawn_worker(prefix, db_path, extra_env=env)
    workers.append(process)
    assert broker.wait_for(lambda: broker.consumers(f"{prefix}.batch", missing=0) == 1, 60)
    return process


def send(prefix: str, bodies: list[dict]) -> list[str]:
    result = publish_many([Message("", f"{prefix}.batch", body) for body in bodies])
    assert result.ok
    return result.confirmed


@HANDLERS
def test_a_poison_message_is_dead_lettered_alone_and_the_rest_applied_once(
    broker: Broker, prefix: str, db_path: Path, workers: list, handler: str
) -> None:
    start(workers, broker, prefix, db_path, handler)
    bodies: list[dict] = [{"n": n} for n in range(60)]
    bodies[17], bodies[41] = {"poison": True}, {"fail": True}
    ids = send(prefix, bodies)
    good = [i for i, body in zip(ids, bodies, strict=True) if "n" in body]
    assert broker.wait_for(lambda: len(effects(db_path)) >= 58, timeout=30)
    assert broker.wait_for(lambda: broker.queue_depth(f"{prefix}.batch.dlq") == 2, timeout=30)
    assert sorted(effects(db_path)) == sorted(good)
    assert broker.wait_for(lambda: broker.unacked(f"{prefix}.batch") == 0, timeout=10)


@HANDLERS
def test_sigkill_at_any_point_applies_every_effect_exactly_once(
    broker: Broker, prefix: str, db_path: Path, workers: list, handler: str
) -> None:
    worker = start(workers, broker, prefix, db_path, handler)
    ids = send(prefix, [{"sleep": 0.002} for _ in range(1000)])
    for number, kill_after in enumerate((150, 500)):
        if number:
            worker = start(workers, broker, prefix, db_path, handler)
        assert broker.wait_for(lambda n=kill_after: len(effects(db_path)) >= n, timeout=60)
        worker.kill()
        worker.wait(timeout=10)
    start(workers, broker, prefix, db_path, handler)
    assert broker.wait_for(lambda: len(effects(db_path)) >= len(ids), timeout=120)
    time.sleep(0.5)  # anything applied twice would show now
    counts = Counter(effects(db_path))
    assert set(counts) == set(ids)
    assert [i for i, n in counts.items() if n > 1] == []
