"""The worker side: a consumer per task queue whose handler runs task messages.

It reuses :class:`rabbitbus.consuming.worker.ConsumerService` (prefetch, ack after the
result is committed, requeue of unstarted work on SIGTERM, database outages,
dead-lettering) with one handler, :meth:`TaskRunner.handle`:

* a task not yet due goes back to a delay queue (confirmed, then acked): no
  task waits in worker memory, so ``consumer_timeout`` never fires;
* a task that raises is ``FAILED`` (exception class and traceback recorded) and acked;
* a message that is no task, or names a task that cannot be imported, is
  dead-lettered to ``<queue>.dlq`` (poison).

Delivery is at-least-once: a worker killed mid-task leaves its message unacked,
and the broker gives it to another worker, which runs it again.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import traceback
from inspect import iscoroutinefunction
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string

from rabbitbus import publishing, topology
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.consuming.worker import ConsumerService
from rabbitbus.exceptions import Reject
from rabbitbus.messages import ReceivedMessage
from rabbitbus.models import TaskRecord
from rabbitbus.runtime.threads import Threads
from rabbitbus.tasks import options as task_options
from rabbitbus.tasks import results, wire
from rabbitbus.tasks.compat import (
    Task,
    TaskContext,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)

logger = logging.getLogger("rabbitbus.tasks.runner")


class NotJSONReturnValue(TypeError):
    """A task returned a value that cannot be stored as JSON (the task is FAILED)."""


class TaskRunner:
    """Runs the task messages of one queue for one backend."""

    def __init__(self, backend: Any, concurrency: int) -> None:
        self.backend = backend
        self.options: task_options.TaskOptions = backend.options_
        self.threads = Threads(concurrency, "rabbitbus-tasks")
        self.writer = results.ResultWriter(self.options.database)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{get_random_string(8)}"[:200]

    async def handle(self, message: ReceivedMessage) -> None:
        """Run one task message; raises :class:`Reject` for a poison message."""
        job = wire.parse(message.body)
        if job.run_after is not None:
            remaining = (job.run_after - timezone.now()).total_seconds()
            if remaining > 0:
                await self._defer(job, message, remaining)
                return
        record = results.record_of(job)
        task = await self._task(job, record)
        seen = await self.threads.run(self._seen, job.id) if message.redelivered else []
        record.status = TaskRecord.Status.RUNNING
        record.started_at = timezone.now()
        record.worker_ids = [*seen, self.worker_id]
        record.attempts = len(record.worker_ids)
        self.writer.submit(copy.copy(record))  # not awaited: joins the batch of the finished ones
        result = results.result_of(record, task)
        value, error = await self._execute(task, result)
        _finish(record, value, error)
        await self.writer.submit(record)
        await self.threads.run(_send, task_finished, self.backend, results.result_of(record, task))

    async def _defer(self, job: wire.Job, message: ReceivedMessage, remaining: float) -> None:
        queue = task_options.delay_queue(
            self.options.queue(job.queue_name), task_options.delay_tier(remaining)
        )
        await publishing.apublish(
            "",
            queue,
            message.body,
            message_id=job.id,
            type=wire.MESSAGE_TYPE,
            priority=self.options.amqp_priority(job.priority),
            connection=self.options.connection,
        )

    async def _task(self, job: wire.Job, record: TaskRecord) -> Task[..., Any]:
        """The task ``job`` names; a missing one is FAILED and dead-lettered."""
        try:
            task = import_string(job.task_path)
            if not isinstance(task, Task):
                raise TypeError(f"{job.task_path} is not a task (decorate it with @task)")
        except (ImportError, TypeError) as exc:
            record.worker_ids = [self.worker_id]
            record.attempts = 1
            _finish(record, None, exc)
            await self.writer.submit(record)
            raise Reject(f"cannot run task {job.task_path}: {exc}") from exc
        return task

    def _seen(self, result_id: str) -> list[str]:
        close_old_connections()
        return results.worker_ids(result_id, self.options.database)

    async def _execute(
        self, task: Task[..., Any], result: TaskResult[..., Any]
    ) -> tuple[Any, Exception | None]:
        """``task_started`` sent, then the task's JSON return value, or the exception it
        raised. A sync task starts in the thread that sent the signal (one hop, not two)."""
        args = list(result.args)
        if task.takes_context:
            args.insert(0, TaskContext(task_result=result))
        if iscoroutinefunction(task.func):
            await self.threads.run(_send, task_started, self.backend, result)
            try:
                value, error = await task.func(*args, **result.kwargs), None
            except Exception as exc:  # noqa: BLE001 - a task's failure is its result
                value, error = None, exc
        else:
            value, error = await self.threads.run(
                _started_then_call, self.backend, result, task.func, args, result.kwargs
            )
        if error is None:
            try:
                return _json_value(task, value), None
            except NotJSONReturnValue as exc:
                error = exc
        logger.info("Task %s (%s) failed: %r", result.id, task.module_path, error)
        return None, error

    async def close(self) -> None:
        await self.writer.close()
        self.threads.shutdown()


def _started_then_call(
    backend: Any, result: TaskResult[..., Any], function: Any, args: list[Any], kwargs: Any
) -> tuple[Any, Exception | None]:
    """``task_started`` (a receiver's error is raised, as Django's signals do), then the
    task: its return value, or the exception it raised."""
    _send(task_started, backend, result)
    # As Django does per request: no connection the database has dropped survives a task.
    close_old_connections()
    try:
        return function(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - a task's failure is its result
        return None, exc
    finally:
        close_old_connections()


def _send(signal: Any, backend: Any, result: TaskResult[..., Any]) -> None:
    signal.send(sender=type(backend), task_result=result)


def _json_value(task: Task[..., Any], value: Any) -> Any:
    try:
        return normalize_json(value)
    except (TypeError, ValueError) as exc:
        raise NotJSONReturnValue(
            f"Task {task.module_path} returned a {type(value).__name__}, which cannot be "
            f"stored as JSON ({exc}); return str, int, float, bool, None, lists or dicts."
        ) from exc


def _finish(record: TaskRecord, value: Any, error: BaseException | None) -> None:
    record.finished_at = timezone.now()
    if error is None:
        record.status = TaskResultStatus.SUCCESSFUL
        record.return_value = value
        return
    record.status = TaskResultStatus.FAILED
    kind = type(error)
    record.exception_class = f"{kind.__module__}.{kind.__qualname__}"
    record.traceback = "".join(traceback.format_exception(error))


class TaskService(ConsumerService):
    """Consumes one task queue with a :class:`TaskRunner`; a runtime service."""

    def __init__(self, backend: Any, queue_name: str, *, concurrency: int = 4) -> None:
        self.runner = TaskRunner(backend, concurrency)
        options: task_options.TaskOptions = backend.options_
        self.entities = options.entities(queue_name)
        spec = ConsumerSpec(
            name=f"tasks:{backend.alias}:{queue_name}",
            handler=self.runner.handle,
            queue=options.queue(queue_name),
            prefetch=concurrency * 2,
            concurrency=concurrency,
            attempts=1,  # a raising task is FAILED, not retried; only poison is dead-lettered
            queue_type=self.entities[0].type,  # type: ignore[union-attr]
            is_async=True,
        )
        super().__init__(spec, alias=options.connection)

    def topology(self) -> topology.Topology:
        declared = topology.Topology()
        declared.add(*self.entities)
        return declared

    async def drain(self) -> None:
        await super().drain()
        await self.runner.close()


def services(backend: Any, queue_names: list[str], concurrency: int) -> list[TaskService]:
    """One service per queue (default: every queue of the backend)."""
    return [TaskService(backend, name, concurrency=concurrency) for name in queue_names]
