"""django.tasks benchmark (not a test): rabbitbus.tasks beside django-tasks-db, in one run.

    .venv/bin/python bench/tasks.py [--tasks 2000] [--concurrency 8]

PostgreSQL (``BENCH_DATABASE_URL``, default the local ``rabbitbus_bench_tasks``
database, created and migrated here) and a vhost of its own, deleted afterwards.

* enqueue rate, sync: ``noop.enqueue()`` in a loop through rabbitbus (the READY
  row and a confirmed publish; and with ``RECORD_ENQUEUED`` off) vs
  django-tasks-db (one INSERT);
* enqueue rate, async: ``aenqueue()`` 50 at a time, same contenders;
* end to end: the tasks enqueued above run by one worker process
  (``rabbit_tasks --concurrency N`` / ``db_worker --interval 0``), rate from the
  first task finished to the last (worker start-up left out for both), every
  result stored by both.

Prints each figure and the ratios rabbitbus / django-tasks-db.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VHOST = os.environ.setdefault("RABBITBUS_TEST_VHOST", f"rabbitbus-bench-{uuid.uuid4().hex[:8]}")
DATABASE = "rabbitbus_bench_tasks"
os.environ.setdefault("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DATABASE}")
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_tasks"
IN_FLIGHT = 50


def create_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            db.execute(f'CREATE DATABASE "{DATABASE}"')


def manage(*args: str, wait: bool = True) -> subprocess.Popen[bytes]:
    command = [sys.executable, "manage.py", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    if wait:
        assert process.wait(timeout=300) == 0, command
    return process


def rate(count: int, function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return count / (time.perf_counter() - started)


def enqueue_rates(count: int) -> dict[str, float]:
    from tests.testapp.tasks import noop

    figures = {}
    for label, backend in (("rabbitbus", "default"), ("rabbitbus-lean", "lean"), ("db", "db")):
        task = noop.using(backend=backend)
        figures[f"enqueue sync {label}"] = rate(
            count, lambda t=task: [t.enqueue() for _ in range(count)]
        )
        figures[f"enqueue async {label}"] = rate(
            count, lambda t=task: asyncio.run(_aenqueue(t, count))
        )
    return figures


def _enqueue(task: Any, count: int) -> None:
    for _ in range(count):
        task.enqueue()


async def _aenqueue(task: Any, count: int) -> None:
    window = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with window:
            await task.aenqueue()

    await asyncio.gather(*(one() for _ in range(count)))


def end_to_end(label: str, model: Any, expected: int, command: list[str]) -> float:
    """Run the worker until ``expected`` rows are finished; tasks/s first to last finish."""
    from django.db.models import Max, Min

    worker = manage(*command, wait=False)
    try:
        deadline = time.monotonic() + 600
        while model.objects.filter(status="SUCCESSFUL").count() < expected:
            assert time.monotonic() < deadline, f"{label}: not done in time"
            assert worker.poll() is None, f"{label}: the worker exited"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    span = model.objects.aggregate(first=Min("finished_at"), last=Max("finished_at"))
    return (expected - 1) / (span["last"] - span["first"]).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    from tests.broker import add_vhost, delete_vhost

    create_database()
    add_vhost(VHOST)
    try:
        run(options.tasks, options.concurrency)
    finally:
        delete_vhost(VHOST)


def run(count: int, concurrency: int) -> None:
    manage("migrate", "-v0")
    manage("rabbit_setup", "-v0")
    import django

    django.setup()
    from django_tasks_db.models import DBTaskResult

    from rabbitbus.models import TaskRecord

    TaskRecord.objects.all().delete()
    DBTaskResult.objects.all().delete()
    figures = enqueue_rates(count)
    figures["end to end rabbitbus"] = end_to_end(
        "rabbitbus", TaskRecord, 4 * count,
        ["rabbit_tasks", "--concurrency", str(concurrency)],
    )  # fmt: skip
    figures["end to end db"] = end_to_end(
        "db", DBTaskResult, 2 * count,
        ["db_worker", "--backend", "db", "--interval", "0", "--no-startup-delay", "--no-reload"],
    )  # fmt: skip
    for name, value in figures.items():
        print(f"{name:32} {value:10.0f} tasks/s")
    print()
    for kind in ("enqueue sync", "enqueue async", "end to end"):
        for label in ("rabbitbus", "rabbitbus-lean"):
            key = f"{kind} {label}"
            if key in figures:
                print(f"{key:32} {figures[key] / figures[f'{kind} db']:6.2f}x django-tasks-db")


if __name__ == "__main__":
    main()
