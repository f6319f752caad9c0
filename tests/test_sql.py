"""rabbitbus.sql: INSERTs that skip rows whose key exists, on the configured database
(SQLite here, PostgreSQL under tests.settings_pg)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from rabbitbus import sql
from rabbitbus.models import TaskRecord

pytestmark = pytest.mark.django_db(transaction=True)


def record(number: int, status: str = TaskRecord.Status.READY) -> TaskRecord:
    return TaskRecord(
        id=f"task-{number}",
        task_path="tests.testapp.tasks.add",
        queue_name="default",
        status=status,
        args=[number, {"nested": [1, 2]}],
        kwargs={"when": "now"},
        enqueued_at=timezone.now(),
    )


@pytest.fixture(params=["one statement", "orm"])
def statement_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """This backend's conflict-skipping INSERT, and the ORM's path other backends take."""
    if request.param == "orm":
        monkeypatch.setattr(sql, "_TEMPLATES", {})
    return str(request.param)


def test_new_rows_are_written_with_every_field(statement_path: str) -> None:
    # More rows than one statement takes on SQLite (999 parameters, 18 columns a row).
    written = [record(n) for n in range(130)]
    sql.insert_new(written, "default")
    assert TaskRecord.objects.count() == 130
    stored = TaskRecord.objects.get(id="task-7")
    assert stored.args == [7, {"nested": [1, 2]}]
    assert stored.kwargs == {"when": "now"}
    assert stored.status == TaskRecord.Status.READY
    assert stored.enqueued_at == written[7].enqueued_at
    assert stored.worker_ids == [] and stored.traceback == ""


def test_rows_whose_key_exists_are_skipped_not_overwritten(statement_path: str) -> None:
    record(1, TaskRecord.Status.RUNNING).save(force_insert=True)
    sql.insert_new([record(1), record(2)], "default")
    statuses = dict(TaskRecord.objects.values_list("id", "status"))
    assert statuses == {"task-1": TaskRecord.Status.RUNNING, "task-2": TaskRecord.Status.READY}


def test_no_rows_is_no_statement() -> None:
    sql.insert_new([], "default")
    assert not TaskRecord.objects.exists()


def test_the_statement_names_every_column_once_per_row() -> None:
    statement = sql.skipping_existing(connection, "t", ["a", "b"], rows=2)
    assert statement is not None
    assert statement.count("(%s, %s)") == 2
    assert sql.skipping_existing(type("Other", (), {"vendor": "oracle"})(), "t", ["a"]) is None  # type: ignore[arg-type]
