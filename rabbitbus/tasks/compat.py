"""One import path for ``django.tasks`` (Django 6+) and the ``django-tasks`` backport (5.2).

The backport names two exceptions differently (``InvalidTaskError``,
``InvalidTaskBackendError``); everything else has the same name and shape.
"""

from __future__ import annotations

try:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import DEFAULT_TASK_PRIORITY, Task, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django < 6: the backport (requirements.txt, Python < 3.12)
    import django_tasks
    import django_tasks.backends.base
    import django_tasks.base
    import django_tasks.exceptions
    import django_tasks.signals
    import django_tasks.utils

    # mypy checks against Django 6's stubs; the backport has the same shapes.
    DEFAULT_TASK_QUEUE_NAME = django_tasks.DEFAULT_TASK_QUEUE_NAME
    TaskContext = django_tasks.TaskContext  # type: ignore[assignment, misc]
    TaskResult = django_tasks.TaskResult  # type: ignore[assignment, misc]
    TaskResultStatus = django_tasks.TaskResultStatus  # type: ignore[assignment, misc]
    task = django_tasks.task  # type: ignore[assignment]
    task_backends = django_tasks.task_backends  # type: ignore[assignment]
    BaseTaskBackend = django_tasks.backends.base.BaseTaskBackend  # type: ignore[assignment, misc]
    DEFAULT_TASK_PRIORITY = django_tasks.base.DEFAULT_TASK_PRIORITY
    Task = django_tasks.base.Task  # type: ignore[assignment, misc]
    TaskError = django_tasks.base.TaskError  # type: ignore[assignment, misc]
    InvalidTask = django_tasks.exceptions.InvalidTaskError  # type: ignore[assignment, misc]
    TaskResultDoesNotExist = django_tasks.exceptions.TaskResultDoesNotExist  # type: ignore[assignment, misc]
    task_enqueued = django_tasks.signals.task_enqueued
    task_finished = django_tasks.signals.task_finished
    task_started = django_tasks.signals.task_started
    normalize_json = django_tasks.utils.normalize_json

__all__ = [
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
