"""``rabbit_tasks`` as a real process: SIGTERM finishes the running task; --prune."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test.utils import override_settings
from django.utils import timezone

from rabbitbus.models import TaskRecord
from rabbitbus.tasks.options import backend_topology
from tests.broker import Broker
from tests.tasks_support import params
from tests.test_metrics_process import free_port, scrape, total, wait_for
from tests.testapp import tasks
from tests.workers import ROOT, worker_env


def status(db_path: Path, result_id: str) -> str | None:
    with sqlite3.connect(db_path, timeout=20) as db:
        row = db.execute("SELECT status FROM rabbitbus_taskrecord WHERE id = ?", [result_id])
        found = row.fetchone()
    return found[0] if found else None


def start(
    broker: Broker,
    prefix: str,
    db_path: Path,
    workers: list,
    command: tuple[str, ...] = ("rabbit_tasks",),
) -> subprocess.Popen[str]:
    """``rabbit_tasks --concurrency 1`` with tests.settings_tasks, once it consumes."""
    env = {**worker_env(prefix, db_path), "DJANGO_SETTINGS_MODULE": "tests.settings_tasks"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", *command, "--concurrency", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers.append(process)
    queue = f"{prefix}.default"
    assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, timeout=60)
    return process


def task_settings(prefix: str) -> dict[str, Any]:
    """What tests.settings_tasks configures (the test process enqueues with it)."""
    settings = params(prefix, RECORD_ENQUEUED=False)
    settings["QUEUES"] = ["default"]
    return settings


def test_sigterm_finishes_the_running_task_then_exits_zero(
    broker: Broker, prefix: str, db_path: Path, tmp_path: Path, workers: list
) -> None:
    settings, queue = task_settings(prefix), f"{prefix}.default"
    process = start(broker, prefix, db_path, workers)
    touched = tmp_path / "touched"
    with override_settings(TASKS={"default": settings}):
        result = tasks.sleep_then_touch.enqueue(2.0, str(touched))
    assert broker.wait_for(lambda: status(db_path, result.id) == "RUNNING", timeout=20)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert touched.exists()
    assert status(db_path, result.id) == "SUCCESSFUL"
    assert broker.queue_depth(queue) == 0
    assert backend_topology(settings).queues  # the worker declared what rabbit_setup would


def test_a_worker_killed_mid_task_has_it_run_again(
    broker: Broker, prefix: str, db_path: Path, tmp_path: Path, workers: list
) -> None:
    touched = tmp_path / "touched"
    first = start(broker, prefix, db_path, workers)
    with override_settings(TASKS={"default": task_settings(prefix)}):
        result = tasks.sleep_then_touch.enqueue(3.0, str(touched))
    assert broker.wait_for(lambda: status(db_path, result.id) == "RUNNING", timeout=20)
    first.kill()
    first.communicate(timeout=30)
    assert not touched.exists()
    start(broker, prefix, db_path, workers)
    assert broker.wait_for(lambda: status(db_path, result.id) == "SUCCESSFUL", timeout=30)
    assert touched.read_text() == str(workers[-1].pid)
    with sqlite3.connect(db_path, timeout=20) as db:
        attempts, worker_ids = db.execute(
            "SELECT attempts, worker_ids FROM rabbitbus_taskrecord WHERE id = ?", [result.id]
        ).fetchone()
    assert attempts == 2
    assert len(json.loads(worker_ids)) == 2


def test_rabbit_consume_tasks_runs_tasks_beside_the_consumers(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    process = start(broker, prefix, db_path, workers, ("rabbit_consume", "--tasks"))
    assert broker.consumers(f"{prefix}.effects") == 1  # tests/testapp/rabbit.py's consumer
    with override_settings(TASKS={"default": task_settings(prefix)}):
        result = tasks.add.enqueue(1, 2)
    assert broker.wait_for(lambda: status(db_path, result.id) == "SUCCESSFUL", timeout=20)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


def test_metrics_port_serves_the_task_metrics(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    """``rabbit_tasks --metrics-port`` serves /metrics, as the other worker commands do."""
    port = free_port()
    command = ("rabbit_tasks", "--metrics-port", str(port))
    process = start(broker, prefix, db_path, workers, command)
    with override_settings(TASKS={"default": task_settings(prefix)}):
        result = tasks.add.enqueue(1, 2)
    labels = {"queue": "default", "task": tasks.add.module_path, "status": "successful"}
    finished = "rabbitbus_tasks_finished_total"
    assert wait_for(lambda: total(scrape(port), finished, **labels) == 1)
    assert total(scrape(port), "rabbitbus_task_seconds_count", task=tasks.add.module_path) == 1
    assert status(db_path, result.id) == "SUCCESSFUL"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"Serving metrics on http://0.0.0.0:{port}/metrics" in output


@pytest.mark.django_db
def test_prune_deletes_finished_results_older_than_the_days_given() -> None:
    old = timezone.now() - timedelta(days=10)
    recent = timezone.now() - timedelta(days=1)
    rows = {
        "old-done": (TaskRecord.Status.SUCCESSFUL, old),
        "old-failed": (TaskRecord.Status.FAILED, old),
        "recent-done": (TaskRecord.Status.SUCCESSFUL, recent),
        "old-ready": (TaskRecord.Status.READY, None),
    }
    for key, (state, finished_at) in rows.items():
        TaskRecord.objects.create(
            id=key, task_path="t.t", queue_name="default", status=state, finished_at=finished_at
        )
    TaskRecord.objects.filter(id="old-ready").update(enqueued_at=old)
    out = io.StringIO()
    with override_settings(TASKS={"default": params("unused")}):
        call_command("rabbit_tasks", "--prune", "7", stdout=out)
    assert "Deleted 2 task results" in out.getvalue()
    assert set(TaskRecord.objects.values_list("id", flat=True)) == {"recent-done", "old-ready"}


@pytest.mark.django_db
def test_prune_without_days_keeps_the_retention_option() -> None:
    finished_at = timezone.now() - timedelta(days=3)
    TaskRecord.objects.create(
        id="three-days", task_path="t.t", queue_name="default",
        status=TaskRecord.Status.SUCCESSFUL, finished_at=finished_at,
    )  # fmt: skip
    for days, left in ((5, 1), (2, 0)):
        settings = params("unused", RESULT_RETENTION_DAYS=days)
        with override_settings(TASKS={"default": settings}):
            call_command("rabbit_tasks", "--prune", stdout=io.StringIO())
        assert TaskRecord.objects.count() == left
