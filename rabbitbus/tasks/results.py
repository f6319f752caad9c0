"""Task results in the database: rows to ``TaskResult`` and back, batched writes, pruning.

The worker never writes one row per transaction: :class:`ResultWriter` hands
every record submitted while the previous batch was being written to one
``INSERT ... ON CONFLICT DO UPDATE`` in one transaction, so the database's
per-transaction rate does not cap the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Self

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, close_old_connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from rabbitbus.models import TaskRecord
from rabbitbus.runtime.threads import Threads
from rabbitbus.tasks.compat import (
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from rabbitbus.tasks.wire import Job

logger = logging.getLogger("rabbitbus.tasks.results")

#: The fields a worker's upsert replaces (everything but the id).
UPDATED_FIELDS = [field.name for field in TaskRecord._meta.concrete_fields if field.name != "id"]

#: Most records written in one transaction.
MAX_BATCH = 500
#: Seconds between the tries of a result write that met a passing database error.
WRITE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)


def record_of(job: Job) -> TaskRecord:
    """A fresh ``READY`` row for ``job``."""
    return TaskRecord(
        id=job.id,
        backend=job.backend,
        task_path=job.task_path,
        queue_name=job.queue_name,
        priority=job.priority,
        takes_context=job.takes_context,
        args=job.args,
        kwargs=job.kwargs,
        run_after=job.run_after,
        enqueued_at=job.enqueued_at,
    )


def result_of(record: TaskRecord, task: Task[..., Any] | None = None) -> TaskResult[..., Any]:
    """The ``TaskResult`` a row describes, also when its task can no longer be imported
    (its ``task`` is then a :class:`MissingTask`): a row tells what happened either way."""
    task = task_of(record) if task is None else as_recorded(task, record)
    errors = []
    if record.exception_class:
        errors.append(
            TaskError(exception_class_path=record.exception_class, traceback=record.traceback)
        )
    result: TaskResult[..., Any] = TaskResult(
        task=task,
        id=record.id,
        status=TaskResultStatus(record.status),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.started_at,
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=errors,
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)
    return result


def task_of(record: TaskRecord) -> Task[..., Any]:
    """The task ``record`` names, with the row's queue, priority and backend; a
    :class:`MissingTask` if that path imports no task (as the worker recorded it)."""
    try:
        task = import_string(record.task_path)
    except ImportError as exc:
        return MissingTask.because(record, f"{type(exc).__name__}: {exc}")
    if not isinstance(task, Task):
        return MissingTask.because(record, f"{record.task_path} is not a task")
    return as_recorded(task, record)


def as_recorded(task: Task[..., Any], record: TaskRecord) -> Task[..., Any]:
    """``task`` with the queue, priority, ``run_after`` and backend ``record`` was given; a
    :class:`RecordedTask` when today's settings no longer allow them (a queue or backend
    removed since it was enqueued): a stored result reads back whatever changed."""
    try:
        return task.using(
            priority=record.priority,
            queue_name=record.queue_name,
            run_after=record.run_after,
            backend=record.backend,
        )
    except (InvalidTask, ImproperlyConfigured):  # ImproperlyConfigured: an unknown backend
        return RecordedTask.of(record, task.func)


class RecordedTask(Task):  # type: ignore[type-arg] # Django 6's Task is not generic at runtime
    """The ``task`` of a stored result as its row recorded it, not validated against the
    backends' settings now (the row says what was enqueued then, not what the settings
    allow today).

    A real ``Task`` of the row's backend, so ``result.task.module_path``, ``name``,
    ``queue_name`` and ``result.refresh()`` work as for any result. Calling it runs its
    function; enqueueing it validates it, as for any task.
    """

    __slots__ = ()

    def __post_init__(self) -> None:
        pass

    @classmethod
    def of(cls, record: TaskRecord, func: Any) -> Self:
        return cls(
            func=func,
            priority=record.priority,
            backend=record.backend,
            queue_name=record.queue_name,
            run_after=record.run_after,
            takes_context=record.takes_context,
        )


class MissingTask(RecordedTask):
    """The ``task`` of a stored result whose path no longer imports a task (a message
    naming an unknown task, or code removed since it was enqueued): calling it raises
    ``ImportError`` saying why it is missing."""

    __slots__ = ()

    @classmethod
    def because(cls, record: TaskRecord, reason: str) -> MissingTask:
        module, _, name = record.task_path.rpartition(".")

        def missing(*args: Any, **kwargs: Any) -> Any:
            raise ImportError(f"Task {record.task_path} cannot be run: {reason}")

        missing.__module__, missing.__name__, missing.__qualname__ = module, name, name
        return cls.of(record, missing)


def get_result(result_id: str, using: str) -> TaskResult[..., Any]:
    """The stored result ``result_id``; raises ``TaskResultDoesNotExist``."""
    try:
        record = TaskRecord.objects.using(using).get(id=result_id)
    except TaskRecord.DoesNotExist:
        raise TaskResultDoesNotExist(result_id) from None
    return result_of(record)


def worker_ids(result_id: str, using: str) -> list[str]:
    """The workers that already took task ``result_id`` (a redelivered task)."""
    found = TaskRecord.objects.using(using).filter(id=result_id).values_list("worker_ids")
    return list(found[0][0]) if found else []


def write(records: Sequence[TaskRecord], using: str) -> None:
    """Insert or replace ``records`` in one transaction."""
    with transaction.atomic(using=using):
        TaskRecord.objects.using(using).bulk_create(
            records, update_conflicts=True, unique_fields=["id"], update_fields=UPDATED_FIELDS
        )


def prune(days: float, using: str = "default") -> int:
    """Delete finished results older than ``days``; returns how many."""
    cutoff = timezone.now() - timedelta(days=days)
    finished = [TaskRecord.Status.SUCCESSFUL, TaskRecord.Status.FAILED]
    deleted, _ = (
        TaskRecord.objects.using(using).filter(status__in=finished, finished_at__lt=cutoff).delete()
    )
    return deleted


class ResultWriter:
    """Writes records in batches from one thread; :meth:`submit` waits for the commit."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.thread = Threads(1, "rabbitbus-task-results")
        self.pending: dict[str, tuple[TaskRecord, list[asyncio.Future[None]]]] = {}
        self.flushing: asyncio.Future[None] | None = None

    def submit(self, record: TaskRecord) -> asyncio.Future[None]:
        """Queue ``record`` (replacing an unwritten one of the same id); the future
        resolves once it is committed, or raises what the write raised."""
        future = asyncio.get_running_loop().create_future()
        _, waiting = self.pending.get(record.id, (record, []))
        self.pending[record.id] = (record, [*waiting, future])
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.ensure_future(self._flush())
        return future

    async def _flush(self) -> None:
        while self.pending:
            ids = list(self.pending)[:MAX_BATCH]
            batch = [self.pending.pop(record_id) for record_id in ids]
            try:
                await self.thread.run(self._write, [record for record, _ in batch])
                error: BaseException | None = None
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                error = exc
            for _, futures in batch:
                for future in futures:
                    _settle(future, error)

    def _write(self, records: list[TaskRecord]) -> None:
        close_old_connections()
        # A lock held by a reader (SQLite: "database table is locked"), a deadlock or a
        # serialization failure passes: try again briefly before failing the batch's tasks.
        for delay in WRITE_RETRY_DELAYS:
            try:
                write(records, self.using)
            except OperationalError as exc:
                logger.info("Writing %d task results failed (%s); retrying", len(records), exc)
                time.sleep(delay)
            else:
                return
        write(records, self.using)

    async def close(self) -> None:
        """Write what is pending, then stop the thread."""
        if self.flushing is not None:
            await asyncio.shield(self.flushing)
        self.thread.shutdown()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # a fire-and-forget RUNNING write: retrieved, not "never retrieved"
