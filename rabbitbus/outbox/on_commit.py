"""Publishing tied to a database transaction: after commit, or through the outbox.

``publish_on_commit`` encodes the message at once (bad payloads raise in the
caller), then publishes it when the transaction commits; a rolled-back
transaction, or a rolled-back savepoint around the call, publishes nothing
(Django's ``transaction.on_commit`` rules). Outside a transaction it publishes
at once. A failed publish never vanishes: by default it is written to the
outbox for the relay (``RABBITBUS['OUTBOX']['ON_COMMIT_FAILURE'] = "outbox"``),
or it raises from the commit (``"raise"``).

With the outbox to fall back on, a commit never waits out an outage: while
this process knows the broker is down (:mod:`rabbitbus.transport.outage`) the message
goes straight to the outbox, and the commit that discovers the outage waits at
most ``OUTBOX['ON_COMMIT_CONNECT_TIMEOUT']`` (capped by ``CONNECTION_TIMEOUT``)
for one connect. The outage is logged once, not once per message.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from django.db import transaction

from rabbitbus import messages, publishing
from rabbitbus.conf import settings
from rabbitbus.exceptions import (
    AccessRefused,
    BrokerUnavailable,
    ConfigurationError,
    RabbitBusError,
)
from rabbitbus.messages import Envelope, Message
from rabbitbus.outbox import table
from rabbitbus.transport import connections

logger = logging.getLogger("rabbitbus.outbox.on_commit")

Mode = Literal["on_commit", "outbox"]
MODES = ("on_commit", "outbox")
FAILURE_POLICIES = ("outbox", "raise")


def publish_on_commit(
    exchange: str,
    routing_key: str,
    payload: Any = None,
    *,
    connection: str = "default",
    using: str | None = None,
    aggregate: str = "",
    on_failure: str | None = None,
    **options: Any,
) -> str:
    """Publish after the current transaction of ``using`` commits; returns the message id.

    ``options`` are :class:`~rabbitbus.messages.Message` fields. ``on_failure``
    overrides ``OUTBOX['ON_COMMIT_FAILURE']`` ("outbox" or "raise").
    """
    envelope = messages.build(Message(exchange, routing_key, payload, **options))
    policy = on_failure or table.options().on_commit_failure
    if policy not in FAILURE_POLICIES:
        raise ConfigurationError(f"on_failure must be one of {FAILURE_POLICIES}, not {policy!r}")

    def send() -> None:
        _send_or_fall_back(envelope, connection, using, aggregate, policy)

    transaction.on_commit(send, using=using)
    return envelope.message_id


def _send_or_fall_back(
    envelope: Envelope, connection: str, using: str | None, aggregate: str, policy: str
) -> None:
    try:
        if policy == "raise":
            _publish(envelope, connection)
        else:
            with connections.failing_fast(_connect_timeout(connection)):
                _publish(envelope, connection)
    except RabbitBusError as exc:
        if policy == "raise":
            raise
        # The outage logged its one WARNING; anything else is news.
        quiet = isinstance(exc, BrokerUnavailable) and not isinstance(exc, AccessRefused)
        logger.log(
            logging.DEBUG if quiet else logging.WARNING,
            "Publish of %s after commit failed (%s); written to the outbox instead",
            envelope.message_id,
            type(exc).__name__,
        )
        row = table.row_for(envelope, connection=connection, aggregate=aggregate)
        table.store([row], using=using)


def _publish(envelope: Envelope, connection: str) -> None:
    publishing.publish_envelopes([envelope], connection=connection).raise_first()


def _connect_timeout(alias: str) -> float:
    """How long a commit waits to connect (the fallback keeps it short)."""
    limit = float(table.options().on_commit_connect_timeout)
    return min(limit, settings.connection(alias).connection_timeout)


def deliver(
    mode: str,
    exchange: str,
    routing_key: str,
    payload: Any = None,
    *,
    connection: str = "default",
    using: str | None = None,
    aggregate: str = "",
    **options: Any,
) -> str:
    """Publish with delivery ``mode`` ("on_commit" or "outbox"); returns the message id."""
    if mode == "outbox":
        send: Any = table.enqueue
    elif mode == "on_commit":
        send = publish_on_commit
    else:
        raise ConfigurationError(f"Unknown delivery mode {mode!r}; use one of {MODES}.")
    return str(
        send(
            exchange,
            routing_key,
            payload,
            connection=connection,
            using=using,
            aggregate=aggregate,
            **options,
        )
    )
