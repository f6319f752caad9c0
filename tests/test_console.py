"""The worker commands greet and take leave on stdout, whatever LOGGING says.

The workers run as real processes with stdout and stderr apart: the lines asserted
here are on stdout, where the project's LOGGING (stderr here) plays no part.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from rabbitbus import outbox, publish_many, rpc
from rabbitbus.messages import Message
from tests.broker import Broker, unique
from tests.workers import ROOT, worker_env

pytestmark = pytest.mark.timeout(120)


def run_until_ready(
    workers: list, broker: Broker, prefix: str, db_path: Path, queue: str, *argv: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=worker_env(prefix, db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers.append(process)
    ready = broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, timeout=60)
    assert ready, f"{argv} did not start consuming {queue}"
    return process


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, wait for a clean exit; returns what it wrote to stdout."""
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stdout


def test_rabbit_consume_greets_tells_each_message_at_v2_and_sums_up(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    queue = f"{prefix}.effects"
    argv = ("rabbit_consume", "apply_effect", "--rpc", "test.echo", "-v", "2", "--loop", "asyncio")
    worker = run_until_ready(workers, broker, prefix, db_path, queue, *argv)
    sent = publish_many([Message("", queue, {"sleep": 0}) for _ in range(2)]).confirmed
    assert rpc.call("test.echo", 1, timeout=20) == {"args": [1], "kwargs": {}}
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 0 and broker.unacked(queue) == 0)
    out = stop(worker)
    lines = out.splitlines()
    assert lines[0] == "rabbitbus consumer worker and RPC server"
    assert f"  consumes tests.testapp.rabbit.apply_effect (sync) queue={queue} " in out
    assert "prefetch=10 concurrency=1" in out
    assert "  serves rpc:test.echo (sync) queue=rpc.test.echo (classic) prefetch=" in out
    assert f"pid {worker.pid}, event loop asyncio" in out and "/rabbitbus-test-" in out
    assert "guest:guest@" not in out  # the password is masked
    assert "Connected to RabbitMQ " in out and " on node " in out
    for message_id in sent:
        assert f"tests.testapp.rabbit.apply_effect: {message_id} processed" in lines
    assert any(line.startswith("rpc:test.echo: ") and "answered" in line for line in lines)
    assert lines[-1].startswith("Stopped consumer worker and RPC server after ")
    handled = "tests.testapp.rabbit.apply_effect 2 processed; rpc:test.echo 1 processed."
    assert lines[-1].endswith(f": {handled}")


def test_rabbit_rpc_greets_and_sums_up_without_per_message_lines_at_v1(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    server = run_until_ready(
        workers, broker, prefix, db_path, "rpc.test.echo", "rabbit_rpc", "test.echo"
    )
    assert rpc.call("test.echo", "x", timeout=20) == {"args": ["x"], "kwargs": {}}
    out = stop(server)
    assert out.startswith("rabbitbus RPC server\n  serves rpc:test.echo (sync)")
    assert "answered" not in out
    assert out.splitlines()[-1].endswith(": rpc:test.echo 1 processed.")


def test_v0_silences_the_worker(broker: Broker, prefix: str, db_path: Path, workers: list) -> None:
    queue = f"{prefix}.effects"
    worker = run_until_ready(workers, broker, prefix, db_path, queue, "rabbit_consume", "-v", "0")
    assert stop(worker) == ""


@pytest.mark.django_db
def test_rabbit_outbox_tells_each_row_at_v2_and_labels_its_summary(broker: Broker) -> None:
    queue = unique("con.outbox")
    with broker.channel() as channel:
        channel.queue_declare(queue, auto_delete=True)
    message_id = outbox.enqueue("", queue, {"n": 1})
    out = io.StringIO()
    call_command("rabbit_outbox", "--once", "-v", "2", stdout=out)
    assert out.getvalue().splitlines() == [
        f"relay: {message_id} published to (default):{queue}",
        "Outbox relay, once: 1 published, 0 failed for good.",
    ]
    quiet = io.StringIO()
    call_command("rabbit_outbox", "--once", "-v", "0", stdout=quiet)
    assert quiet.getvalue() == ""


def test_rabbit_outbox_greets_and_labels_its_summary_at_exit(prefix: str, db_path: Path) -> None:
    relay = subprocess.Popen(
        [sys.executable, "manage.py", "rabbit_outbox"],
        cwd=ROOT,
        env=worker_env(prefix, db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        greeting = [relay.stdout.readline() for _ in range(4)]  # flushed line by line
    finally:
        out = stop(relay)
    assert greeting[0] == "rabbitbus outbox relay\n"
    assert greeting[1].startswith(
        "  relays outbox rows of database 'default' (sqlite), 500 per batch"
    )
    assert f"pid {relay.pid}" in greeting[2]
    assert out.splitlines()[-1].startswith("Stopped outbox relay after ")
    assert out.splitlines()[-1].endswith(": 0 published, 0 failed for good.")
