"""django.tasks benchmark (not a test): rabbitbus.tasks beside django-tasks-db and Celery.

    .venv/bin/python bench/tasks.py [--tasks 2000] [--concurrency 8] [--latency 200]
        [--latency-only]

PostgreSQL (``BENCH_DATABASE_URL``, default the local ``rabbitbus_bench_tasks``
database, created and migrated here) and a vhost of its own, deleted afterwards.
Every contender stores every result in that database (bench/task_contenders.py):

* enqueue rate, sync: ``noop.enqueue()`` in a loop through rabbitbus (the READY
  row and a confirmed publish; and with ``RECORD_ENQUEUED`` off), django-tasks-db
  (one INSERT) and Celery (``apply_async``: a publish, unconfirmed by default);
* enqueue rate, async: ``aenqueue()`` 50 at a time (Celery has no async enqueue);
* end to end, no-op and a task that writes one row: the tasks enqueued first, then
  run by one worker process (``rabbit_tasks --concurrency N``, ``db_worker
  --interval 0``, ``celery worker -P threads -c N`` with late acks and
  django-celery-results), rate from the first task finished to the last;
* enqueue-to-start latency: tasks enqueued one at a time (``--latency`` of them,
  20 ms apart) to an idle running worker, each returning ``time.time()`` at its
  start minus the time taken just before ``enqueue()`` (so rabbitbus's READY row
  and broker confirm count; ``rabbitbus-lean`` writes no READY row,
  ``rabbitbus-classic`` runs on a classic queue instead of a quorum one); p50 and p95.
  ``--latency-only`` runs just these.

Prints each figure and the ratios rabbitbus / django-tasks-db and rabbitbus / Celery.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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
SPACING = 0.02


def create_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            db.execute(f'CREATE DATABASE "{DATABASE}"')


def rate(count: int, function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return count / (time.perf_counter() - started)


def enqueue_rates(count: int) -> dict[str, float]:
    from bench.task_contenders import Celery
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
    celery = Celery()
    figures["enqueue sync celery"] = rate(
        count, lambda: [celery.enqueue("noop") for _ in range(count)]
    )
    return figures


async def _aenqueue(task: Any, count: int) -> None:
    window = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with window:
            await task.aenqueue()

    await asyncio.gather(*(one() for _ in range(count)))


def end_to_end(contender: Any, expected: int, concurrency: int) -> float:
    """Run the worker until ``expected`` results are stored; tasks/s first to last finish."""
    worker = contender.worker(concurrency)
    try:
        deadline = time.monotonic() + 600
        while contender.finished() < expected:
            assert time.monotonic() < deadline, f"{contender.label}: not done in time"
            assert worker.poll() is None, f"{contender.label}: the worker exited"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    first, last = contender.span()
    return (expected - 1) / (last - first).total_seconds()


def latencies(contender: Any, count: int, concurrency: int) -> list[float]:
    """Enqueue-to-start seconds of ``count`` tasks sent one at a time to an idle worker."""
    worker = contender.worker(concurrency)
    try:
        contender.enqueue("latency", time.time())  # warm-up: the worker is up once it ran
        _wait(contender, worker, 1)
        contender.clear()
        for _ in range(count):
            contender.enqueue("latency", time.time())
            time.sleep(SPACING)
        _wait(contender, worker, count)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return sorted(contender.return_values())


def _wait(contender: Any, worker: Any, expected: int) -> None:
    deadline = time.monotonic() + 300
    while contender.finished() < expected:
        assert time.monotonic() < deadline, f"{contender.label}: not done in time"
        assert worker.poll() is None, f"{contender.label}: the worker exited"
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=int, default=200, help="tasks for the latency run")
    parser.add_argument(
        "--latency-only", action="store_true", help="only the enqueue-to-start latencies"
    )
    options = parser.parse_args()
    from tests.broker import add_vhost, delete_vhost

    create_database()
    add_vhost(VHOST)
    try:
        report(run(options.tasks, options.concurrency, options.latency, options.latency_only))
    finally:
        delete_vhost(VHOST)


def run(
    count: int, concurrency: int, latency_count: int, latency_only: bool = False
) -> dict[str, float]:
    from bench.task_contenders import manage

    manage("migrate", "-v0")
    manage("rabbit_setup", "-v0")
    import django

    django.setup()
    from bench.task_contenders import RabbitBus, contenders

    rabbit, db, celery = everyone = contenders()
    for contender in everyone:
        contender.clear()
    figures = {} if latency_only else throughputs(everyone, count, concurrency)
    for contender in [rabbit, RabbitBus("lean"), RabbitBus("classic"), db, celery]:
        values = latencies(contender, latency_count, concurrency)
        figures[f"latency p50 {short(contender)}"] = statistics.median(values)
        figures[f"latency p95 {short(contender)}"] = values[int(len(values) * 0.95) - 1]
        contender.clear()
    return figures


def throughputs(everyone: list[Any], count: int, concurrency: int) -> dict[str, float]:
    """Enqueue rates, and end to end with a no-op task and with one writing a row."""
    rabbit, db, celery = everyone
    figures = enqueue_rates(count)
    sizes = {rabbit.label: 4 * count, db.label: 2 * count, celery.label: count}
    for contender in everyone:
        key = f"end to end {short(contender)}"
        figures[key] = end_to_end(contender, sizes[contender.label], concurrency)
        contender.clear()
    for contender in everyone:
        for n in range(count):
            contender.enqueue("write_row", n)
        figures[f"write row {short(contender)}"] = end_to_end(contender, count, concurrency)
        contender.clear()
    return figures


def short(contender: Any) -> str:
    return {"django-tasks-db": "db"}.get(contender.label, contender.label)


def report(figures: dict[str, float]) -> None:
    for name, value in figures.items():
        if name.startswith("latency"):
            print(f"{name:32} {value * 1000:10.1f} ms")
        else:
            print(f"{name:32} {value:10.0f} tasks/s")
    print()
    for kind in ("enqueue sync", "enqueue async", "end to end", "write row", "latency p50"):
        for label in ("rabbitbus", "rabbitbus-lean", "rabbitbus-classic"):
            key = f"{kind} {label}"
            for other, name in (("db", "django-tasks-db"), ("celery", "Celery")):
                if key in figures and f"{kind} {other}" in figures:
                    ratio = figures[key] / figures[f"{kind} {other}"]
                    print(f"{key:32} {ratio:6.2f}x {name}")


if __name__ == "__main__":
    main()
