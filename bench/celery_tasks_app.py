"""The Celery baseline for bench/tasks.py: the same tasks, acked late, results in PostgreSQL.

Results go to the same database as the other contenders' through django-celery-results
(``result_backend = "django-db"``), so Celery too stores every result; every other
option is Celery's default (prefetch multiplier 4, JSON). Started by bench/tasks.py as
``celery -A bench.celery_tasks_app worker -P threads -c N`` beside Django's settings.
"""

from __future__ import annotations

import os
import time

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_tasks")
django.setup()

from tests.testapp.models import Effect  # noqa: E402 - needs django.setup()

VHOST = os.environ.get("RABBITBUS_TEST_VHOST", "/")
QUEUE = "bench.celery.tasks"

app = Celery("bench_tasks", broker=f"amqp://guest:guest@127.0.0.1:5672/{VHOST}")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_backend="django-db",
    task_acks_late=True,  # ack after the task ran: the same promise as rabbit_tasks
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.tasks.noop")
def noop() -> None:
    return None


@app.task(name="bench.tasks.write_row")
def write_row(n: int) -> None:
    Effect.objects.create(consumer="bench.celery", message_id=str(n))


@app.task(name="bench.tasks.latency")
def latency(sent: float) -> float:
    return time.time() - sent
