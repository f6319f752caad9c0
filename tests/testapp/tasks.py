"""``django.tasks`` tasks for tests/test_tasks*.py (run by rabbitbus.tasks)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from rabbitbus.tasks.compat import TaskContext, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def attempt_and_id(context: TaskContext) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id}


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def returns_object() -> Any:
    return object()


@task
def noop() -> None:
    return None


@task
def sleep_then_touch(seconds: float, path: str) -> str:
    """Sleep, then create ``path``: proof the task ran to its end."""
    time.sleep(seconds)
    Path(path).write_text(str(os.getpid()))
    return path


@task
def clock() -> float:
    return time.time()


@task
async def async_clock() -> float:
    return time.time()
