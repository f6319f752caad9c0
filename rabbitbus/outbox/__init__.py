"""Messages tied to the database: bridges, on-commit publishing, the outbox and its relay.

- :mod:`~rabbitbus.outbox.bridges`: Django signals -> messages (``rabbitbus.bridge``).
- :mod:`~rabbitbus.outbox.on_commit`: publish after commit, or through the outbox
  (``rabbitbus.publish_on_commit``).
- :mod:`~rabbitbus.outbox.table`: the outbox store, rows written in the caller's transaction
  (:func:`enqueue`), claimed, marked and pruned by
- :mod:`~rabbitbus.outbox.relay`: :class:`~rabbitbus.outbox.relay.Relay`, run by
  ``manage.py rabbit_outbox``.

``from rabbitbus import outbox`` gives the store's functions (``outbox.enqueue(...)``).
"""

from __future__ import annotations

from rabbitbus.outbox.table import (
    CREATE,
    FAILED,
    NOTIFY_CHANNEL,
    PENDING,
    PROPERTY_FIELDS,
    SENT,
    claim,
    claimable,
    enqueue,
    enqueue_many,
    envelope_of,
    local_wakeup,
    mark_sent,
    options,
    prune,
    record_failure,
    release,
    retry_failed,
    row_for,
    status,
    store,
)

__all__ = [
    "FAILED",
    "PENDING",
    "SENT",
    "CREATE",
    "NOTIFY_CHANNEL",
    "PROPERTY_FIELDS",
    "claim",
    "claimable",
    "enqueue",
    "enqueue_many",
    "envelope_of",
    "local_wakeup",
    "mark_sent",
    "options",
    "prune",
    "record_failure",
    "release",
    "retry_failed",
    "row_for",
    "status",
    "store",
]
