"""bench/tasks.py's django.tasks tasks (the no-op is ``tests.testapp.tasks.noop``).

Imported once Django is set up: ``@task`` checks its backend when it is applied.
"""

from __future__ import annotations

import time

from rabbitbus.tasks.compat import task
from tests.testapp.models import Effect


@task
def write_row(n: int) -> None:
    """Insert one row: a task with a database write of its own."""
    Effect.objects.create(consumer="bench.tasks", message_id=str(n))


@task
def latency(sent: float) -> float:
    """Seconds from ``sent`` (taken just before ``enqueue()``) to this task's start."""
    return time.time() - sent
