"""The idempotent inbox: one row per (consumer, message id), written with the effects.

Runs on SQLite here and on PostgreSQL in the ``postgres`` suite (tests/test_inbox_pg.py).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import transaction

from rabbitbus import publish, sql
from rabbitbus.consuming import dispatch, inbox, retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.messages import ReceivedMessage
from rabbitbus.models import ProcessedMessage
from rabbitbus.runtime.threads import Threads
from tests.broker import Broker, unique
from tests.testapp.models import Effect
from tests.workers import ThreadWorker, spec

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["one statement", "portable"])
def claim_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways to claim: the backend's conflict-ignoring insert, and the savepoint path
    every other backend takes."""
    if request.param == "portable":
        monkeypatch.setattr(sql, "_TEMPLATES", {})
    return str(request.param)


def test_a_message_is_claimed_once_per_consumer(claim_path: str) -> None:
    with transaction.atomic():
        assert inbox.claim("billing", "m-1") is True
    with transaction.atomic():
        assert inbox.claim("billing", "m-1") is False
        assert inbox.claim("inventory", "m-1") is True
    rows = sorted(ProcessedMessage.objects.values_list("consumer", "message_id"))
    assert rows == [("billing", "m-1"), ("inventory", "m-1")]
    assert ProcessedMessage.objects.get(consumer="billing").processed_at is not None


def test_a_rolled_back_claim_leaves_the_message_unapplied(claim_path: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        assert inbox.claim("billing", "m-2") is True
        raise RuntimeError("the handler failed")
    assert not ProcessedMessage.objects.exists()
    with transaction.atomic():
        assert inbox.claim("billing", "m-2") is True


def received(message_id: str) -> ReceivedMessage:
    return ReceivedMessage(
        body={"n": 1},
        headers={},
        routing_key="k",
        exchange="x",
        message_id=message_id,
        redelivered=False,
        attempt=1,
    )


def test_an_idempotent_handler_applies_a_message_once_and_keeps_nothing_it_failed(
    claim_path: str,
) -> None:
    failures = ["once"]

    def handler(message: ReceivedMessage) -> None:
        Effect.objects.create(consumer="test", message_id=message.message_id or "")
        if failures:
            failures.pop()
            raise RuntimeError("first attempt fails after writing its effect")

    spec = ConsumerSpec(name="effects", handler=handler, queue="q", idempotent=True)
    threads = Threads(1, "test-inbox")

    async def deliver(message_id: str) -> bool:
        return await dispatch.run_handler(spec, received(message_id), threads)

    try:
        with pytest.raises(RuntimeError):
            asyncio.run(deliver("m-3"))  # rolled back: neither the effect nor the inbox row
        assert not Effect.objects.exists() and not ProcessedMessage.objects.exists()
        assert asyncio.run(deliver("m-3")) is False  # applied
        assert asyncio.run(deliver("m-3")) is True  # a duplicate: not applied again
    finally:
        threads.shutdown()
    assert list(Effect.objects.values_list("message_id", flat=True)) == ["m-3"]
    assert ProcessedMessage.objects.filter(consumer="effects", message_id="m-3").count() == 1


def test_an_async_idempotent_handler_writes_in_the_inbox_transaction(claim_path: str) -> None:
    """Its async ORM writes commit with the inbox row, or roll back with it."""
    failures = ["once"]

    async def handler(message: ReceivedMessage) -> None:
        await Effect.objects.acreate(consumer="async", message_id=message.message_id or "")
        if failures:
            failures.pop()
            raise RuntimeError("first attempt fails after writing its effect")

    spec = ConsumerSpec(
        name="async-effects", handler=handler, queue="q", idempotent=True, is_async=True
    )
    threads = Threads(1, "test-inbox-async")

    async def deliver(message_id: str) -> bool:
        return await dispatch.run_handler(spec, received(message_id), threads)

    try:
        with pytest.raises(RuntimeError):
            asyncio.run(deliver("m-4"))
        assert not Effect.objects.exists() and not ProcessedMessage.objects.exists()
        assert asyncio.run(deliver("m-4")) is False
        assert asyncio.run(deliver("m-4")) is True
    finally:
        threads.shutdown()
    assert list(Effect.objects.values_list("consumer", "message_id")) == [("async", "m-4")]


def test_many_ids_are_claimed_in_one_statement_and_old_ones_are_told_apart(
    claim_path: str,
) -> None:
    with transaction.atomic():
        assert inbox.claim("billing", "m-5") is True
    with transaction.atomic():
        new = inbox.claim_many("billing", ["m-5", "m-6", "m-7", "m-6"])
    assert new == {"m-6", "m-7"}
    assert ProcessedMessage.objects.filter(consumer="billing").count() == 3
    assert inbox.claim_many("billing", []) == set()
    many = [f"n-{n}" for n in range(1200)]  # more rows than one INSERT takes
    with transaction.atomic():
        assert inbox.claim_many("billing", many) == set(many)
    assert ProcessedMessage.objects.count() == 1203


def test_a_locked_sqlite_database_holds_the_message_without_spending_an_attempt(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds SQLite's write lock ("database table is locked" at once on
    the tests' shared-cache database): the idempotent handler's message is held as
    through an outage and applied once the lock is released, with attempts=1 never
    dead-lettered (a cluster test lost a message to the DLQ that way, the lock being the
    worker's own heartbeat row)."""
    queue, tries = unique("inbox.locked"), []
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with transaction.atomic():
            Effect.objects.create(consumer="holder", message_id="lock")
            holding.set()
            release.wait(30)

    def handler(message: ReceivedMessage) -> None:
        tries.append(message.attempt)
        Effect.objects.create(consumer=queue, message_id=message.message_id or "")

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(10)
        consumer = spec(queue, handler, idempotent=True, attempts=1)
        with ThreadWorker(consumer).start(broker) as worker:
            message_id = publish("", queue, {"n": 1})
            held = "holds its messages and retries them"
            assert broker.wait_for(lambda: held in caplog.text, timeout=20)
            release.set()
            assert broker.wait_for(lambda: worker.stats()["processed"] == 1, timeout=20)
    finally:
        release.set()
        holder.join(10)
    assert tries == [1]  # the inbox's claim met the lock first; no attempt spent on it
    assert list(Effect.objects.filter(consumer=queue).values_list("message_id", flat=True)) == [
        message_id
    ]
    assert broker.queue_depth(retries.dead_letter_queue(queue)) == 0
