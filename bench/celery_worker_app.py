"""The Celery baseline for bench/worker.py: one no-op task, acked late like rabbitbus.

Configured from the environment by bench/worker.py: the vhost, the queue, how
many tasks to expect, and a directory where the first and the last task write
their wall-clock time (the worker runs in its own process).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

VHOST = os.environ.get("RABBITBUS_TEST_VHOST", "/")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench.celery")
EXPECTED = int(os.environ.get("BENCH_CELERY_COUNT", "0"))
MARKS = Path(os.environ.get("BENCH_CELERY_DIR", "."))

app = Celery("bench_worker", broker=f"amqp://guest:guest@127.0.0.1:5672/{VHOST}")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,  # ack after the task ran: the same promise as a rabbitbus worker
    worker_prefetch_multiplier=100,  # -P solo runs one at a time: prefetch 100, as the others
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)

_seen = [0]


@app.task(name="bench.noop")
def noop(value: int) -> None:
    _seen[0] += 1
    if _seen[0] in (1, EXPECTED):
        (MARKS / ("first" if _seen[0] == 1 else "last")).write_text(repr(time.time()))
