"""INSERTs that skip the rows whose key is already there, written without the ORM's compiler.

The inbox claims one row per message and ``enqueue()`` writes one ``READY`` row per
task, both on hot paths where the ORM's ``bulk_create`` costs as much Python time as
the database's round trip. ``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL, SQLite)
and ``INSERT IGNORE`` (MySQL, MariaDB) do it in one statement; other backends have no
such statement here (:func:`skipping_existing` returns None) and take the ORM's path.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

_TEMPLATES = {
    "postgresql": "INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING",
    "sqlite": "INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING",
    "mysql": "INSERT IGNORE INTO {table} ({columns}) VALUES {rows}",
}


#: Statements built so far (the inbox asks for the same one per message), by template,
#: vendor (which decides the quoting), table, columns and rows; cleared when this many.
_STATEMENTS_KEPT = 256
_statements: dict[tuple[str, str, str, tuple[str, ...], int], str] = {}


def skipping_existing(
    connection: BaseDatabaseWrapper, table: str, columns: Sequence[str], rows: int = 1
) -> str | None:
    """An INSERT of ``rows`` rows into ``columns`` (one ``%s`` each) that skips a row whose
    key exists (its ``rowcount`` is the rows written); None on a backend without one."""
    template = _TEMPLATES.get(connection.vendor)
    if template is None:
        return None
    key = (template, connection.vendor, table, tuple(columns), rows)
    statement = _statements.get(key)
    if statement is None:
        if len(_statements) >= _STATEMENTS_KEPT:
            _statements.clear()
        quote = connection.ops.quote_name
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        statement = _statements[key] = template.format(
            table=quote(table),
            columns=", ".join(quote(column) for column in columns),
            rows=", ".join([row] * rows),
        )
    return statement


def insert_new(objects: Sequence[Model], using: str) -> None:
    """Insert ``objects`` (of one model, keys set) and skip those whose key exists: a
    few statements for them all, or ``bulk_create(ignore_conflicts=True)`` elsewhere."""
    if not objects:
        return
    connection = connections[using]
    model = type(objects[0])
    table = model._meta.db_table
    fields = [field for field in model._meta.concrete_fields if not field.db_returning]
    columns = [str(field.column) for field in fields]
    # The backend's own limit (SQLite's 999 parameters), and PostgreSQL's 65,535 per statement.
    size = max(1, min(connection.ops.bulk_batch_size(fields, objects), 65535 // len(fields)))
    with connection.cursor() as cursor:
        for start in range(0, len(objects), size):
            chunk = objects[start : start + size]
            statement = skipping_existing(connection, table, columns, len(chunk))
            if statement is None:
                model._default_manager.using(using).bulk_create(chunk, ignore_conflicts=True)
                continue
            params = [
                field.get_db_prep_save(field.pre_save(obj, True), connection)
                for obj in chunk
                for field in fields
            ]
            cursor.execute(statement, params)
