"""The idempotent inbox: one row per (consumer, message id) applied.

:func:`claim` writes the row inside the caller's transaction and tells whether
the message is new, in one round trip where the database allows it
(``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite, ``INSERT
IGNORE`` on MySQL and MariaDB): no savepoint, no ORM instance. Other backends
take the portable path, a savepoint around ``create`` that catches the
``IntegrityError``.
"""

from __future__ import annotations

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from rabbitbus.models import ProcessedMessage

_INSERTS = {
    "postgresql": "INSERT INTO {table} ({columns}) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
    "sqlite": "INSERT INTO {table} ({columns}) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
    "mysql": "INSERT IGNORE INTO {table} ({columns}) VALUES (%s, %s, %s)",
}


def database() -> str:
    """The alias the inbox is written to (the routers' choice for its model)."""
    return router.db_for_write(ProcessedMessage) or "default"


def claim(consumer: str, message_id: str, using: str | None = None) -> bool:
    """Record that ``consumer`` applies ``message_id``; False if it already had.

    Call it inside the transaction that applies the message's effects, so the
    row and the effects commit together or not at all.
    """
    alias = using or database()
    connection = connections[alias]
    template = _INSERTS.get(connection.vendor)
    if template is None:
        return _claim_portably(consumer, message_id, alias)
    options = ProcessedMessage._meta
    quote = connection.ops.quote_name
    column = {field.name: str(field.column) for field in options.concrete_fields}
    columns = ", ".join(quote(column[name]) for name in ("consumer", "message_id", "processed_at"))
    sql = template.format(table=quote(options.db_table), columns=columns)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [consumer, message_id, now])
        return bool(cursor.rowcount == 1)


def _claim_portably(consumer: str, message_id: str, alias: str) -> bool:
    try:
        with transaction.atomic(using=alias):
            ProcessedMessage.objects.using(alias).create(consumer=consumer, message_id=message_id)
    except IntegrityError:
        return False
    return True
