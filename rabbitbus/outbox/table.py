"""The transactional outbox: rows written with the change that caused them.

:func:`enqueue` encodes a message at once (serialization errors raise in the
caller) and stores its bytes in :class:`~rabbitbus.models.OutboxMessage` in
the caller's transaction: the row exists exactly when the change committed.
The relay (:mod:`rabbitbus.outbox.relay`) claims, publishes and marks rows with the
functions below.

Ordering: rows with the same non-empty ``aggregate`` are published in row id
order, by any number of relays, because only the oldest pending row of an
aggregate can be claimed. Writers of one aggregate should be serialized (they
usually are: they update the same model row, which locks it), since row ids
follow insert order, not commit order. A row that keeps failing holds back its
aggregate until it is marked failed. Rows without an aggregate have no order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from rabbitbus import messages
from rabbitbus.conf import OutboxSettings, settings
from rabbitbus.messages import Envelope, Message
from rabbitbus.models import OutboxMessage

#: PostgreSQL NOTIFY channel the relay LISTENs on.
NOTIFY_CHANNEL = "rabbitbus_outbox"

#: Set (on commit) when this process wrote rows; an in-process relay waits on it.
local_wakeup = threading.Event()

#: Envelope fields kept in the row's ``properties`` JSON.
PROPERTY_FIELDS = (
    "timestamp",
    "app_id",
    "type",
    "delivery_mode",
    "priority",
    "expiration",
    "correlation_id",
    "reply_to",
    "mandatory",
)
PENDING, SENT, FAILED = (
    OutboxMessage.Status.PENDING,
    OutboxMessage.Status.SENT,
    OutboxMessage.Status.FAILED,
)


def options() -> OutboxSettings:
    """``RABBITBUS['OUTBOX']`` over its defaults (:class:`rabbitbus.conf.OutboxSettings`)."""
    return settings.outbox


# -- writing -----------------------------------------------------------------

#: The trace operation of a message written to the outbox: created now, published later
#: by the relay (whose ``publish`` span is the created one's child).
CREATE = "create"


def row_for(
    envelope: Envelope, *, connection: str = "default", aggregate: str = ""
) -> OutboxMessage:
    """An unsaved outbox row holding ``envelope``'s bytes and properties."""
    return OutboxMessage(
        connection=connection,
        exchange=envelope.exchange,
        routing_key=envelope.routing_key,
        message_id=envelope.message_id,
        body=envelope.body,
        content_type=envelope.content_type,
        headers=envelope.headers,
        properties={name: getattr(envelope, name) for name in PROPERTY_FIELDS},
        aggregate=aggregate,
    )


def envelope_of(row: OutboxMessage) -> Envelope:
    """The envelope a row was written from, byte for byte."""
    return Envelope(
        exchange=row.exchange,
        routing_key=row.routing_key,
        body=bytes(row.body),
        message_id=row.message_id,
        content_type=row.content_type,
        headers=dict(row.headers or {}),
        **row.properties,
    )


def enqueue(
    exchange: str,
    routing_key: str,
    payload: Any = None,
    *,
    aggregate: str = "",
    connection: str = "default",
    using: str | None = None,
    **options: Any,
) -> str:
    """Write one message to the outbox in the current transaction; returns its id.

    ``options`` are :class:`~rabbitbus.messages.Message` fields. Raises
    :class:`SerializationError` or :class:`MessageTooLarge` before writing.
    """
    envelope = messages.build(Message(exchange, routing_key, payload, **options), operation=CREATE)
    store([row_for(envelope, connection=connection, aggregate=aggregate)], using=using)
    return envelope.message_id


def enqueue_many(
    batch: Iterable[Message],
    *,
    aggregate: str = "",
    connection: str = "default",
    using: str | None = None,
) -> list[str]:
    """Write many messages in one ``INSERT``; returns their ids in order."""
    rows = [
        row_for(
            messages.build(message, operation=CREATE), connection=connection, aggregate=aggregate
        )
        for message in batch
    ]
    store(rows, using=using)
    return [row.message_id for row in rows]


def store(rows: Sequence[OutboxMessage], *, using: str | None = None) -> None:
    """Insert ``rows`` and wake the relays when the transaction commits."""
    alias = using or "default"
    OutboxMessage.objects.using(alias).bulk_create(rows)
    if connections[alias].vendor == "postgresql":
        # NOTIFY is transactional: delivered at commit, dropped on rollback.
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    transaction.on_commit(local_wakeup.set, using=alias)


# -- the relay's side --------------------------------------------------------


def claimable(now: Any, using: str = "default") -> QuerySet[OutboxMessage]:
    """Pending rows free to claim: unclaimed or expired, and first of their aggregate."""
    rows = OutboxMessage.objects.using(using)
    older = rows.filter(status=PENDING, aggregate=OuterRef("aggregate"), id__lt=OuterRef("id"))
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return rows.filter(free, status=PENDING).filter(Q(aggregate="") | ~Exists(older))


def claim(relay_id: str, limit: int, timeout: float, using: str = "default") -> list[OutboxMessage]:
    """Claim up to ``limit`` rows for ``timeout`` seconds in one short transaction.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED`` so concurrent
    relays never claim the same row; a claim older than ``timeout`` (a killed
    relay) may be taken again.
    """
    now = timezone.now()
    with transaction.atomic(using=using):
        query = claimable(now, using).order_by("id").select_for_update(skip_locked=True)
        rows = list(query[:limit])
        OutboxMessage.objects.using(using).filter(id__in=[row.id for row in rows]).update(
            claimed_by=relay_id, claimed_until=now + timedelta(seconds=timeout)
        )
    return rows


def mark_sent(ids: Sequence[int], using: str = "default") -> None:
    """The broker confirmed these rows: they are done."""
    OutboxMessage.objects.using(using).filter(id__in=ids).update(
        status=SENT, sent_at=timezone.now(), claimed_by="", claimed_until=None
    )


def release(ids: Sequence[int], relay_id: str, using: str = "default") -> None:
    """Give rows back untouched (the broker was unreachable: not their fault)."""
    OutboxMessage.objects.using(using).filter(id__in=ids, claimed_by=relay_id).update(
        claimed_by="", claimed_until=None
    )


def record_failure(
    row: OutboxMessage,
    error: BaseException,
    relay_id: str,
    using: str = "default",
    opts: OutboxSettings | None = None,
) -> bool:
    """Count a failed attempt; back off, or mark the row failed after ``MAX_ATTEMPTS``.

    Backoff doubles from ``RETRY_BACKOFF`` seconds. Returns True when the row
    is now failed for good.
    """
    opts = opts or options()
    attempts = row.attempts + 1
    give_up = attempts >= opts.max_attempts
    delay = opts.retry_backoff * 2 ** (attempts - 1)
    OutboxMessage.objects.using(using).filter(id=row.id, claimed_by=relay_id).update(
        attempts=F("attempts") + 1,
        last_error=f"{type(error).__name__}: {error}"[:2000],
        status=FAILED if give_up else PENDING,
        claimed_by="",
        claimed_until=None if give_up else timezone.now() + timedelta(seconds=delay),
    )
    return give_up


def prune(retention: float | None = None, using: str = "default") -> int:
    """Delete rows sent more than ``retention`` seconds ago; returns how many."""
    seconds = options().retention if retention is None else retention
    cutoff = timezone.now() - timedelta(seconds=seconds)
    deleted, _ = OutboxMessage.objects.using(using).filter(status=SENT, sent_at__lt=cutoff).delete()
    return deleted


def retry_failed(using: str = "default") -> int:
    """Put failed rows back to pending with a fresh attempt count (operator action)."""
    return (
        OutboxMessage.objects.using(using)
        .filter(status=FAILED)
        .update(status=PENDING, attempts=0, claimed_by="", claimed_until=None)
    )


def status(
    using: str = "default", failed_limit: int = 10
) -> tuple[dict[str, int], list[OutboxMessage]]:
    """Row counts by status, and the most recent failed rows (for operators)."""
    rows = OutboxMessage.objects.using(using)
    counts = dict.fromkeys(OutboxMessage.Status.values, 0)
    for row in rows.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts, list(rows.filter(status=FAILED).order_by("-id")[:failed_limit])
