"""The idempotent inbox: one row per (consumer, message id) applied.

:func:`claim` writes the row inside the caller's transaction and tells whether
the message is new, in one round trip where the database allows it
(``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite, ``INSERT
IGNORE`` on MySQL and MariaDB): no savepoint, no ORM instance. Other backends
take the portable path, a savepoint around ``create`` that catches the
``IntegrityError``.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from rabbitbus.models import ProcessedMessage
from rabbitbus.sql import skipping_existing


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
    sql = skipping_existing(connection, ProcessedMessage._meta.db_table, _columns())
    if sql is None:
        return _claim_portably(consumer, message_id, alias)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [consumer, message_id, now])
        return bool(cursor.rowcount == 1)


@functools.cache
def _columns() -> tuple[str, str, str]:
    """The inbox table's columns for consumer, message id and time, as :func:`claim` writes them."""
    column = {field.name: str(field.column) for field in ProcessedMessage._meta.concrete_fields}
    return column["consumer"], column["message_id"], column["processed_at"]


def claim_many(consumer: str, message_ids: Sequence[str], using: str | None = None) -> set[str]:
    """:func:`claim` for many ids at once; the ids that are new.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on PostgreSQL and on SQLite
    3.35+, one :func:`claim` per id elsewhere.
    """
    alias = using or database()
    connection = connections[alias]
    if not message_ids:
        return set()
    if not _returns_rows(connection):
        return {id_ for id_ in dict.fromkeys(message_ids) if claim(consumer, id_, alias)}
    quote = connection.ops.quote_name
    column = {field.name: str(field.column) for field in ProcessedMessage._meta.concrete_fields}
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    unique = list(dict.fromkeys(message_ids))
    new: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(unique), _ROWS_PER_INSERT):
            chunk = unique[start : start + _ROWS_PER_INSERT]
            sql = (
                f"INSERT INTO {quote(ProcessedMessage._meta.db_table)} "  # noqa: S608 - quoted
                f"({quote(column['consumer'])}, {quote(column['message_id'])}, "
                f"{quote(column['processed_at'])}) VALUES "
                + ", ".join(["(%s, %s, %s)"] * len(chunk))
                + f" ON CONFLICT DO NOTHING RETURNING {quote(column['message_id'])}"
            )
            cursor.execute(sql, [value for id_ in chunk for value in (consumer, id_, now)])
            new.update(row[0] for row in cursor.fetchall())
    return new


#: Rows per multi-row INSERT: SQLite allows 32,766 parameters, three per row.
_ROWS_PER_INSERT = 500


def _returns_rows(connection: BaseDatabaseWrapper) -> bool:
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)


def _claim_portably(consumer: str, message_id: str, alias: str) -> bool:
    try:
        with transaction.atomic(using=alias):
            ProcessedMessage.objects.using(alias).create(consumer=consumer, message_id=message_id)
    except IntegrityError:
        return False
    return True
