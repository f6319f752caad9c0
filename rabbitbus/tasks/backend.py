"""``RabbitMQBackend``: Django's task backend contract on RabbitMQ.

``enqueue`` publishes one persistent message, confirmed by the broker, to the
task's queue (or to a delay queue for ``run_after``). Inside
``transaction.atomic()`` it publishes when the transaction commits and never
for a rolled-back one (``DELIVERY = "on_commit"``, the default), or writes an
outbox row in the same transaction (``DELIVERY = "outbox"``) that the relay
publishes. Results live in the database (:mod:`rabbitbus.tasks.results`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Sequence
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from rabbitbus import outbox, publishing
from rabbitbus.exceptions import ConfigurationError, TaskArgumentsError
from rabbitbus.models import TaskRecord
from rabbitbus.outbox import on_commit
from rabbitbus.sql import insert_new
from rabbitbus.tasks import options as task_options
from rabbitbus.tasks import results, wire
from rabbitbus.tasks.compat import (
    BaseTaskBackend,
    Task,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from rabbitbus.tasks.ready_rows import ReadyRows

logger = logging.getLogger("rabbitbus.tasks.backend")
P = ParamSpec("P")
R = TypeVar("R")


class RabbitMQBackend(BaseTaskBackend):
    """Tasks as RabbitMQ messages, results in the database. See docs/tasks.md."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False  # True per instance when OPTIONS["MAX_PRIORITY"] is set

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.options_ = task_options.TaskOptions.parse(self.options, alias)
        if not self.queues:
            raise ConfigurationError(
                f"TASKS[{alias!r}]['QUEUES'] must name the queues (one AMQP queue each)."
            )
        self.supports_priority = self.options_.max_priority is not None
        self._ready_rows_by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, ReadyRows[tuple[TaskResult[..., Any], wire.Job]]
        ] = weakref.WeakKeyDictionary()

    # -- enqueue -----------------------------------------------------------

    def enqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """Validate, publish and record (``READY``); returns the ``TaskResult`` once the
        broker confirmed the message.

        Raises ``InvalidTask`` (and :class:`TaskArgumentsError` for arguments that
        are not JSON) before anything is written or sent, and the
        :mod:`rabbitbus.publishing` errors if the broker does not confirm. Outside a
        transaction the ``READY`` row is written while the broker confirms (it is
        never behind the worker's rows: it is skipped if they are there first).
        """
        result, job = self._prepare(task, args, kwargs)
        using = self.options_.database
        if self.options_.delivery == "outbox" or connections[using].in_atomic_block:
            if self.options_.record_enqueued:
                self._record_ready([job])
            try:
                self._publish(job)  # in a transaction, on its commit (or with its rollback)
            except BaseException:
                self._unrecord(job)
                raise
        else:
            self._publish_now(job)
        self._sent(result)
        return result

    def _publish_now(self, job: wire.Job) -> None:
        """Publish ``job`` with a confirm, its ``READY`` row written meanwhile.

        The row cannot be written (a database outage) but the broker confirmed: the task
        will run and its worker records it, so this only logs. The broker did not
        confirm: the row goes, and the publish's error is raised."""
        recorded: list[Exception | None] = []  # the row's write, once run: None if written

        def record() -> None:
            try:
                self._record_ready([job])
                recorded.append(None)
            except Exception as exc:  # noqa: BLE001 - weighed once the broker answered
                recorded.append(exc)

        queue, message = self._address(job)
        meanwhile = record if self.options_.record_enqueued else None
        try:
            publishing.publish("", queue, job.body(), meanwhile=meanwhile, **message)
        except BaseException:
            if recorded == [None]:
                self._unrecord(job)
            raise
        if recorded and recorded[0] is not None:
            logger.warning(
                "Task %s is enqueued, but its READY row could not be written (%r); "
                "get_result() finds it once a worker starts it", job.id, recorded[0],
            )  # fmt: skip

    def _record_ready(self, jobs: Sequence[wire.Job]) -> None:
        """The ``READY`` rows of ``jobs``, unless a worker wrote theirs first."""
        insert_new([results.record_of(job) for job in jobs], self.options_.database)

    async def aenqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """The async twin of :meth:`enqueue`: publishes with ``apublish`` on this loop
        once the ``READY`` row is written (in Django's sync thread, together with the rows
        of the calls made meanwhile: :mod:`rabbitbus.tasks.ready_rows`); with the outbox,
        or inside a transaction of that thread, it does what :meth:`enqueue` does."""
        if self.options_.delivery == "outbox":
            return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)
        result, job = self._prepare(task, args, kwargs)
        if self.options_.record_enqueued and await self._ready_rows().record((result, job)):
            return result
        queue, message = self._address(job)
        try:
            await publishing.apublish("", queue, job.body(), **message)
        except BaseException:
            await sync_to_async(self._unrecord)(job)
            raise
        await sync_to_async(task_enqueued.send)(type(self), task_result=result)
        return result

    def _ready_rows(self) -> ReadyRows[tuple[TaskResult[..., Any], wire.Job]]:
        loop = asyncio.get_running_loop()
        rows = self._ready_rows_by_loop.get(loop)
        if rows is None:
            rows = self._ready_rows_by_loop[loop] = ReadyRows(self._record)
        return rows

    def _record(self, pending: Sequence[tuple[TaskResult[..., Any], wire.Job]]) -> list[bool]:
        """Write the ``READY`` rows of ``pending`` in one ``INSERT``; inside a transaction,
        also publish each on its commit (True for each: nothing left to do)."""
        self._record_ready([job for _, job in pending])
        if not connections[self.options_.database].in_atomic_block:
            return [False] * len(pending)
        for result, job in pending:
            self._publish(job)
            self._sent(result)
        return [True] * len(pending)

    def _publish(self, job: wire.Job) -> None:
        """To the outbox, on commit, or now with a confirm (see the module docstring)."""
        using = self.options_.database
        queue, message = self._address(job)
        if self.options_.delivery == "outbox":
            outbox.enqueue("", queue, job.body(), using=using, **message)
        elif connections[using].in_atomic_block:
            on_commit.publish_on_commit("", queue, job.body(), using=using, **message)
        else:
            publishing.publish("", queue, job.body(), **message)

    def _unrecord(self, job: wire.Job) -> None:
        """Delete ``job``'s ``READY`` row after a publish that raised, so no task is shown
        waiting that was never sent. Inside a transaction the caller's rollback does it; a
        row a worker already started (the broker had the message after all) stays."""
        using = self.options_.database
        if not self.options_.record_enqueued or connections[using].in_atomic_block:
            return
        try:
            TaskRecord.objects.using(using).filter(
                id=job.id, status=TaskRecord.Status.READY
            ).delete()
        except Exception:  # noqa: BLE001 - the publish's error is the one to raise
            logger.warning(
                "Could not delete the READY row of unsent task %s", job.id, exc_info=True
            )

    def _prepare(
        self, task: Task[P, R], args: Any, kwargs: Any
    ) -> tuple[TaskResult[P, R], wire.Job]:
        self.validate_task(task)
        args, kwargs = _json_arguments(task, args, kwargs)
        result: TaskResult[P, R] = TaskResult(
            task=task,
            id=get_random_string(32),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        job = wire.Job(
            id=result.id,
            task_path=task.module_path,
            args=result.args,
            kwargs=result.kwargs,
            backend=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            takes_context=task.takes_context,
            run_after=task.run_after,
            enqueued_at=result.enqueued_at,
        )
        return result, job

    def _address(self, job: wire.Job) -> tuple[str, dict[str, Any]]:
        """The queue to publish ``job`` to (a delay queue if not due) and message options."""
        queue = self.options_.queue(job.queue_name)
        if job.run_after is not None:
            remaining = (job.run_after - timezone.now()).total_seconds()
            if remaining > 0:
                queue = task_options.delay_queue(queue, task_options.delay_tier(remaining))
        message = {
            "message_id": job.id,
            "type": wire.MESSAGE_TYPE,
            "priority": self.options_.amqp_priority(job.priority),
            "connection": self.options_.connection,
        }
        return queue, message

    def _sent(self, result: TaskResult[..., Any]) -> None:
        using = self.options_.database
        if connections[using].in_atomic_block:
            transaction.on_commit(
                lambda: task_enqueued.send(type(self), task_result=result), using=using
            )
        else:
            task_enqueued.send(type(self), task_result=result)

    # -- results -------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The stored result, from any process; raises ``TaskResultDoesNotExist``."""
        return results.get_result(result_id, self.options_.database)


def _json_arguments(
    task: Task[..., Any], args: Any, kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` as JSON values; raises :class:`TaskArgumentsError`."""
    try:
        positional: Any = normalize_json(list(args))
        named: Any = normalize_json(dict(kwargs))
        json.dumps([positional, named], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskArgumentsError(
            f"Arguments of task {task.module_path} must be JSON values "
            f"(str, int, float, bool, None, lists and dicts of them): {exc}"
        ) from exc
    return positional, named
