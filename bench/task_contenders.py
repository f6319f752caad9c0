"""bench/tasks.py's three contenders: how each starts its worker, enqueues, and records.

Every contender stores every result in the same PostgreSQL database: rabbitbus in
``TaskRecord``, django-tasks-db in ``DBTaskResult``, Celery (through
django-celery-results) in ``TaskResult``. Imported once Django is set up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Max, Min

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, wait: bool = True) -> subprocess.Popen[bytes]:
    command = [sys.executable, "manage.py", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    if wait:
        assert process.wait(timeout=300) == 0, command
    return process


@dataclass
class Contender:
    label: str
    #: the results' model, its "finished" status value and time field
    model: Any
    success: str
    finished_field: str

    def worker(self, concurrency: int) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def enqueue(self, name: str, *args: Any) -> None:
        raise NotImplementedError

    def finished(self) -> int:
        return int(self.model.objects.filter(status=self.success).count())

    def span(self) -> tuple[datetime, datetime]:
        """When the first and the last stored task finished."""
        field = self.finished_field
        found = self.model.objects.aggregate(first=Min(field), last=Max(field))
        return found["first"], found["last"]

    def return_values(self) -> list[Any]:
        return list(self.model.objects.filter(status=self.success).values_list("return_value"))

    def clear(self) -> None:
        self.model.objects.all().delete()


class RabbitBus(Contender):
    """``backend="lean"``: the same queues, ``RECORD_ENQUEUED`` off; ``"classic"``: classic
    work queues instead of quorum ones (bench/settings_tasks.py)."""

    def __init__(self, backend: str = "default") -> None:
        from rabbitbus.models import TaskRecord

        label = "rabbitbus" if backend == "default" else f"rabbitbus-{backend}"
        super().__init__(label, TaskRecord, "SUCCESSFUL", "finished_at")
        self.backend = backend

    def worker(self, concurrency: int) -> subprocess.Popen[bytes]:
        backend = "classic" if self.backend == "classic" else "default"  # lean: default's queues
        return manage(
            "rabbit_tasks", "--backend", backend, "--concurrency", str(concurrency), wait=False
        )

    def enqueue(self, name: str, *args: Any) -> None:
        _job(name).using(backend=self.backend).enqueue(*args)

    def return_values(self) -> list[Any]:
        return [v for (v,) in super().return_values()]


class TasksDb(Contender):
    def __init__(self) -> None:
        from django_tasks_db.models import DBTaskResult

        super().__init__("django-tasks-db", DBTaskResult, "SUCCESSFUL", "finished_at")

    def worker(self, concurrency: int) -> subprocess.Popen[bytes]:
        return manage(
            "db_worker", "--backend", "db", "--interval", "0", "--no-startup-delay", "--no-reload",
            wait=False,
        )  # fmt: skip

    def enqueue(self, name: str, *args: Any) -> None:
        _job(name).using(backend="db").enqueue(*args)

    def return_values(self) -> list[Any]:
        return [v for (v,) in super().return_values()]


class Celery(Contender):
    def __init__(self) -> None:
        from django_celery_results.models import TaskResult

        super().__init__("celery", TaskResult, "SUCCESS", "date_done")

    def worker(self, concurrency: int) -> subprocess.Popen[bytes]:
        from bench.celery_tasks_app import QUEUE

        command = [
            sys.executable, "-m", "celery", "-A", "bench.celery_tasks_app", "worker",
            "-P", "threads", "-c", str(concurrency), "-Q", QUEUE, "-l", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        return subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())

    def enqueue(self, name: str, *args: Any) -> None:
        from bench import celery_tasks_app

        getattr(celery_tasks_app, name).apply_async(args)

    def return_values(self) -> list[Any]:
        rows = self.model.objects.filter(status=self.success).values_list("result", flat=True)
        return [json.loads(row) for row in rows]


def _job(name: str) -> Any:
    """The django.tasks task ``name``: ``noop`` (tests.testapp) or one of bench.jobs."""
    if name == "noop":
        from tests.testapp.tasks import noop

        return noop
    from bench import jobs

    return getattr(jobs, name)


def contenders() -> list[Contender]:
    return [RabbitBus(), TasksDb(), Celery()]
