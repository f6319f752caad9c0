"""The dashboard's task queues: broker counts and stored results per ``django.tasks`` queue.

For each queue of each ``TASKS`` backend that is ``rabbitbus.tasks.RabbitMQBackend``:
its work queue's ready and unacked messages and consumers (from the snapshot's
queue figures), the deferred tasks waiting in its delay queues, and its
``TaskRecord`` rows counted by status. Reads no ``django.tasks`` module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rabbitbus.exceptions import ConfigurationError
from rabbitbus.tasks import options as task_options

if TYPE_CHECKING:
    from rabbitbus.monitoring import QueueStats

#: the statuses of django.tasks' TaskResultStatus, in the order a task goes through them
STATUSES = ("READY", "RUNNING", "SUCCESSFUL", "FAILED")


@dataclass
class TaskQueueStats:
    backend: str
    #: the Django queue name (``@task(queue_name=...)``) and its AMQP work queue
    name: str
    queue: str
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    #: tasks with a future ``run_after``, waiting in the delay queues
    deferred: int | None = None
    #: ``TaskRecord`` rows by status (every status present, 0 if none)
    results: dict[str, int] = field(default_factory=dict)


def configured_queues() -> list[tuple[str, str, str]]:
    """``(backend alias, Django queue name, AMQP queue)`` of every configured task queue."""
    found = []
    for alias, params in task_options.configured_backends().items():
        try:
            parsed = task_options.TaskOptions.parse(params.get("OPTIONS", {}))
        except ConfigurationError:  # the backend refuses to start; its checks say why
            continue
        found += [(alias, name, parsed.queue(name)) for name in params.get("QUEUES") or []]
    return found


def all_queues() -> list[str]:
    """Work, dead-letter and delay queues of every configured backend."""
    names: list[str] = []
    for params in task_options.configured_backends().values():
        try:
            names += task_options.backend_topology(params).queues
        except ConfigurationError:
            continue
    return names


def result_counts() -> dict[tuple[str, str], dict[str, int]]:
    """``TaskRecord`` rows counted by status, per ``(backend, queue_name)``: one query."""
    from django.db.models import Count

    from rabbitbus.models import TaskRecord

    counts: dict[tuple[str, str], dict[str, int]] = {}
    rows = TaskRecord.objects.values_list("backend", "queue_name", "status").annotate(Count("pk"))
    for backend, queue_name, status, count in rows.order_by():
        counts.setdefault((backend, queue_name), dict.fromkeys(STATUSES, 0))[status] = count
    return counts


def task_queues(queues: list[QueueStats]) -> list[TaskQueueStats]:
    """The task queues' figures, from the snapshot's ``queues`` and the database."""
    configured = configured_queues()
    if not configured:
        return []
    by_name = {stats.name: stats for stats in queues}
    counts = result_counts()
    found = []
    for alias, name, queue in configured:
        stats = by_name.get(queue)
        row = TaskQueueStats(alias, name, queue, results=dict.fromkeys(STATUSES, 0))
        row.results.update(counts.get((alias, name), {}))
        if stats is not None:
            row.exists = stats.exists
            row.ready, row.unacked, row.consumers = stats.ready, stats.unacked, stats.consumers
            row.deferred = _deferred(queue, by_name)
        found.append(row)
    return found


def _deferred(queue: str, by_name: dict[str, QueueStats]) -> int | None:
    """Messages ready in ``queue``'s delay queues (None if the broker gave no count)."""
    names = [task_options.delay_queue(queue, ms) for ms in task_options.DELAY_TIERS_MS]
    readies = [by_name[name].ready for name in names if name in by_name and by_name[name].exists]
    if not readies or None in readies:
        return None
    return sum(r for r in readies if r is not None)
