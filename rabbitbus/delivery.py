"""Publishing tied to a database transaction: after commit, or through the outbox.

``publish_on_commit`` encodes the message at once (bad payloads raise in the
caller), then publishes it when the transaction commits; a rolled-back
transaction, or a rolled-back savepoint around the call, publishes nothing
(Django's ``transaction.on_commit`` rules). Outside a transaction it publishes
at once. A failed publish never vanishes: by default it is written to the
outbox for the relay (``RABBITBUS['OUTBOX']['ON_COMMIT_FAILURE'] = "outbox"``),
or it raises from the commit (``"raise"``).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from django.db import transaction

from rabbitbus import messages, outbox, publishing
from rabbitbus.exceptions import ConfigurationError, RabbitBusError
from rabbitbus.messages import Envelope, Message

logger = logging.getLogger("rabbitbus.delivery")

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
    policy = on_failure or outbox.options()["ON_COMMIT_FAILURE"]
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
        publishing.publish_envelopes([envelope], connection=connection).raise_first()
    except RabbitBusError as exc:
        if policy == "raise":
            raise
        logger.warning(
            "Publish of %s after commit failed (%s); written to the outbox instead",
            envelope.message_id,
            type(exc).__name__,
        )
        row = outbox.row_for(envelope, connection=connection, aggregate=aggregate)
        outbox.store([row], using=using)


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
        send: Any = outbox.enqueue
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
