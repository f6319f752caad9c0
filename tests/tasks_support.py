"""Helpers for the task backend's tests: settings, topology, a worker in a thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.test.utils import override_settings

from rabbitbus.runtime.service import Runtime
from rabbitbus.tasks import runner
from rabbitbus.tasks.compat import TaskResult, task_backends
from rabbitbus.tasks.options import backend_topology
from rabbitbus.transport import declare
from tests.broker import Broker, unique
from tests.workers import ThreadRuntime

BACKEND = "rabbitbus.tasks.RabbitMQBackend"


def params(prefix: str, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "QUEUES": ["default", "other"],
        "OPTIONS": {"QUEUE_PREFIX": f"{prefix}.", **options},
    }


@contextlib.contextmanager
def tasks_backend(broker: Broker, **options: Any) -> Iterator[Any]:
    """TASKS["default"] = this backend on queues of its own, declared."""
    prefix = unique("tk")
    settings = params(prefix, **options)
    entities = backend_topology(settings)
    with broker.channel() as channel:
        declare.declare(channel, entities)
    try:
        with override_settings(TASKS={"default": settings}):
            yield task_backends["default"]
    finally:
        # About 30 queues a backend (delay tiers, DLQs): left behind, a thousand of them
        # slowed the session vhost's management API past its timeout.
        with broker.channel() as channel:
            for name in entities.queues:
                channel.queue_delete(name)
            for name in entities.exchanges:
                if name.startswith(prefix):
                    channel.exchange_delete(name)


def thread_worker(backend: Any, *queue_names: str, concurrency: int = 2) -> ThreadRuntime:
    """A ``rabbit_tasks`` runtime for ``backend`` in a background thread (not started)."""
    names = list(queue_names or ["default"])

    def make() -> Runtime:
        services = runner.services(backend, names, concurrency)
        return Runtime(services, alias=backend.options_.connection)

    return ThreadRuntime(make)


def finished(result: TaskResult, broker: Broker, timeout: float = 20) -> TaskResult:
    """``result`` refreshed until its task finished (fails the test otherwise)."""

    def done() -> bool:
        with contextlib.suppress(Exception):
            result.refresh()
        return result.is_finished

    assert broker.wait_for(done, timeout=timeout), f"task {result.id} is {result.status}"
    return result
