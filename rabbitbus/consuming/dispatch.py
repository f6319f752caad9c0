"""From a delivery to an outcome: decode, run the handler, decide ack/retry/dead-letter.

No AMQP I/O here: :func:`dispatch` returns an :class:`Outcome` that the
worker carries out (publish the retry or dead-letter copy with confirms,
then ack the original).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from asgiref.sync import async_to_sync
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)

from rabbitbus import messages
from rabbitbus.consuming import retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import DecodeError, Reject, Retry
from rabbitbus.messages import Delivery, ReceivedMessage
from rabbitbus.observability import traces
from rabbitbus.runtime.threads import Threads

logger = logging.getLogger("rabbitbus.consuming.dispatch")
T = TypeVar("T")


ACK = "ack"
RETRY = "retry"
DEAD_LETTER = "dead-letter"
#: The handler failed because a database is unreachable: not the message's fault, so no
#: attempt is counted; the worker holds the message and runs it again once the database answers.
DATABASE_DOWN = "database-down"

#: What Django raises when a database is unreachable (and for some other faults too:
#: :func:`database_unreachable` tells them apart).
DATABASE_ERRORS = (OperationalError, InterfaceError)


@dataclass
class Outcome:
    """What to do with a delivery: ``ack``, ``retry`` after ``delay_ms``, or ``dead-letter``."""

    action: str
    error: BaseException | str | None = None
    delay_ms: int = 0
    duplicate: bool = False


def receive(spec: ConsumerSpec, delivery: Delivery) -> ReceivedMessage:
    """Decode ``delivery`` for ``spec``'s handler; raises :class:`DecodeError`."""
    exchange, routing_key = retries.origin_of(
        delivery.headers, delivery.exchange, delivery.routing_key
    )
    attempt = retries.attempt_of(delivery.headers, spec.attempts)
    return messages.received(delivery, exchange=exchange, routing_key=routing_key, attempt=attempt)


async def dispatch(spec: ConsumerSpec, delivery: Delivery, threads: Threads) -> Outcome:
    """Run ``spec``'s handler on ``delivery`` and say what to do with the delivery.

    Never raises for a handler's or a body's fault: those become outcomes.
    """
    try:
        message = receive(spec, delivery)
    except DecodeError as exc:
        logger.warning(
            "Undecodable message %s on %s (%s); dead-lettering",
            delivery.message_id,
            spec.queue,
            exc,
        )
        return Outcome(DEAD_LETTER, exc)
    try:
        duplicate = await run_handler(spec, message, threads)
    except Reject as exc:
        logger.info(
            "Handler %s rejected message %s: %s", spec.name, delivery.message_id, exc.reason
        )
        return Outcome(DEAD_LETTER, exc)
    except Retry as exc:
        return _after_failure(spec, message, exc, exc.delay)
    except Exception as exc:  # noqa: BLE001 - any handler failure is retried
        if isinstance(exc, DATABASE_ERRORS) and (
            database_locked(exc) or await threads.run(database_unreachable)
        ):
            return Outcome(DATABASE_DOWN, exc)
        logger.warning(
            "Handler %s failed on message %s (attempt %d/%d)",
            spec.name, delivery.message_id, message.attempt, spec.attempts, exc_info=True,
        )  # fmt: skip
        return _after_failure(spec, message, exc, None)
    return Outcome(ACK, duplicate=duplicate)


def _after_failure(
    spec: ConsumerSpec, message: ReceivedMessage, error: BaseException, delay: float | None
) -> Outcome:
    if message.attempt >= spec.attempts or not spec.retry_tiers:
        return Outcome(DEAD_LETTER, error)
    if delay is None:
        delay_ms = retries.backoff_ms(message.attempt, *spec.backoff)
    else:
        delay_ms = retries.tier_for(max(0.0, delay), spec.retry_tiers)
    return Outcome(RETRY, error, delay_ms=delay_ms)


async def run_handler(spec: ConsumerSpec, message: ReceivedMessage, threads: Threads) -> bool:
    """Run the handler; returns True if an idempotent consumer had already applied it."""
    if spec.runs_on_loop:
        await spec.handler(message)
        return False
    call = _in_transaction if spec.in_transaction else _plain_call
    if traces.on:  # the handler's own publishes continue its trace
        call = traces.in_this_context(call)
    return await threads.run(call, spec, message)


def database_locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" or "database table is locked":
    another connection holds the lock (past the busy timeout, or at once between the
    connections of a shared-cache in-memory database), a wait and not the message's fault,
    so the message is held as through an outage instead of spending an attempt."""
    return isinstance(error.__cause__, sqlite3.OperationalError) and "locked" in str(error)


def database_unreachable() -> bool:
    """Whether a configured database refuses this thread a working connection now."""
    for alias in connections:
        connection = connections[alias]
        try:
            connection.close_if_unusable_or_obsolete()
            connection.ensure_connection()
            usable = connection.is_usable()
        except DATABASE_ERRORS:
            usable = False
        except Exception:  # noqa: BLE001 - cannot tell: the handler's failure counts as usual
            logger.debug("Could not check database %r", alias, exc_info=True)
            continue
        if not usable:
            with contextlib.suppress(*DATABASE_ERRORS):
                connection.close()
            return True
    return False


def with_fresh_db(function: Callable[[], T]) -> T:
    """``function()`` with this thread's database connections checked before and after."""
    # A long-lived worker thread must not keep a connection the DB has dropped
    # (CONN_MAX_AGE, server restarts): Django does this per request, we per message.
    # Never inside a transaction (rabbitbus.testing runs handlers in a test's): closing
    # would break it, and a worker thread is never in one.
    if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        return function()
    close_old_connections()
    try:
        return function()
    finally:
        close_old_connections()


def _plain_call(spec: ConsumerSpec, message: ReceivedMessage) -> bool:
    def call() -> bool:
        spec.handler(message)
        return False

    return with_fresh_db(call)


def _in_transaction(spec: ConsumerSpec, message: ReceivedMessage) -> bool:
    return run_batch(spec, [message])[0]


def run_batch(spec: ConsumerSpec, batch: Sequence[ReceivedMessage]) -> list[bool]:
    """Run ``batch`` in one database transaction (in a worker thread), each message's
    inbox row included when ``spec`` is idempotent; which ones were duplicates. The
    handler takes each new message, or (``many=True``) the list of them, once.

    Raises what a handler raised, with the whole batch rolled back.
    """
    from rabbitbus.consuming import inbox  # its models need the app registry, which imports us

    if spec.idempotent and not all(message.message_id for message in batch):
        raise Reject("idempotent consumer received a message without message_id")
    # An async handler runs here, in this thread's transaction: async_to_sync runs it on a
    # loop of its own and sends its thread-sensitive calls (Django's async ORM) back to
    # this thread, so its writes commit or roll back with the inbox row.
    handle = async_to_sync(spec.handler) if spec.is_async else spec.handler

    def call() -> list[bool]:
        duplicates = []
        fresh_messages: list[ReceivedMessage] = []
        alias = inbox.database()
        with transaction.atomic(using=alias), _default_atomic_unless(alias):
            fresh: set[str] | None = None
            if spec.idempotent and len(batch) == 1:
                fresh = {ids[0]} if inbox.claim(spec.name, ids[0], alias) else set()
            elif spec.idempotent:
                fresh = inbox.claim_many(spec.name, ids, alias)
            for message, message_id in zip(batch, ids, strict=True):
                if fresh is not None and message_id not in fresh:
                    logger.info("Message %s already processed by %s", message.message_id, spec.name)
                    duplicates.append(True)
                    continue
                if fresh is not None:
                    fresh.discard(message_id)  # the same id twice in a batch: applied once
                if spec.many:
                    fresh_messages.append(message)
                else:
                    handle(message)
                duplicates.append(False)
            if fresh_messages:
                handle(fresh_messages)
        return duplicates

    ids = [message.message_id or "" for message in batch]
    return with_fresh_db(call)


def _default_atomic_unless(alias: str) -> contextlib.AbstractContextManager[object]:
    """The handler's own writes (to the default database) in a transaction too, when
    the inbox is routed elsewhere."""
    if alias == "default":
        return contextlib.nullcontext()
    return transaction.atomic()
