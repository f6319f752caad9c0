"""The Celery baseline for bench/rpc.py: one echo task, ``rpc://`` result backend.

Configured as Celery's documentation starts one (JSON serializer); every
other option keeps Celery's default. The bench sends to one queue per worker
(``apply_async(queue=...)``) so that a solo and a prefork worker can run side
by side and take turns.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

VHOST = os.environ.get("RABBITBUS_TEST_VHOST", "/")

app = Celery(
    "bench",
    broker=f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
    backend="rpc://",
)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


@app.task(name="bench.echo")
def echo(value: Any) -> Any:
    return value
