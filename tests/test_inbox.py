"""The idempotent inbox: one row per (consumer, message id), written with the effects.

Runs on SQLite here and on PostgreSQL in the ``postgres`` suite (tests/test_inbox_pg.py).
"""

from __future__ import annotations

import asyncio

import pytest
from django.db import transaction

from rabbitbus import sql
from rabbitbus.consuming import dispatch, inbox
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.messages import ReceivedMessage
from rabbitbus.models import ProcessedMessage
from rabbitbus.runtime.threads import Threads
from tests.testapp.models import Effect

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
