"""``manage.py rabbit_rpc`` as a real process: graceful stop, SIGKILL mid-call, commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rabbitbus import rpc
from rabbitbus.exceptions import BrokerConnectionError, RpcTimeout
from tests.broker import Broker
from tests.rpc_support import call_in_thread, serving

ROOT = Path(__file__).resolve().parent.parent
QUEUE = rpc.queue_name("test.touch")


def start_server(broker: Broker, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rabbit_rpc", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert broker.wait_for(lambda: _consumers(broker) > 0, timeout=30), "server did not start"
    return process


def _consumers(broker: Broker) -> int:
    try:
        return broker.consumers(QUEUE)
    except Exception:  # noqa: BLE001 - the queue does not exist yet
        return 0


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> str:
    """Each event loop the server can run on."""
    return str(request.param)


@pytest.fixture
def server(broker: Broker, loop: str) -> Iterator[subprocess.Popen[bytes]]:
    process = start_server(broker, "test.touch", "--loop", loop)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(30)


def test_sigterm_finishes_the_call_in_flight_and_exits_zero(
    broker: Broker, server: subprocess.Popen[bytes], loop: str, tmp_path: Path
) -> None:
    target = tmp_path / "ran"
    thread, outcome = call_in_thread("test.touch", str(target), 1.5, timeout=10)
    time.sleep(0.5)
    server.send_signal(signal.SIGTERM)
    thread.join(15)
    assert outcome == {"result": str(target)}
    assert server.wait(30) == 0
    assert broker.consumers(QUEUE) == 0
    assert server.stderr is not None
    assert f"Event loop: {loop}" in server.stderr.read().decode()


def test_server_reconnects_when_the_broker_closes_its_connection(
    broker: Broker, server: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    target = tmp_path / "ran"
    assert rpc.call("test.touch", str(target), timeout=10) == str(target)
    broker.close_all_connections()  # the server's and this process's

    def answers() -> bool:
        try:
            return bool(rpc.call("test.touch", str(target), timeout=2) == str(target))
        except (BrokerConnectionError, RpcTimeout):
            return False

    assert broker.wait_for(answers, timeout=30)
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0
    assert server.stderr is not None
    assert "reconnecting" in server.stderr.read().decode()


def test_server_killed_mid_call_times_out_and_expired_call_never_runs(
    broker: Broker, server: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    killed, later = tmp_path / "killed", tmp_path / "later"
    thread, outcome = call_in_thread("test.touch", str(killed), 1.0, timeout=1.5)
    time.sleep(0.5)
    server.kill()
    server.wait(10)
    thread.join(10)
    assert isinstance(outcome.get("error"), RpcTimeout)
    restarted = start_server(broker, "test.touch")
    try:
        assert rpc.call("test.touch", str(later), timeout=10) == str(later)
        time.sleep(1.5)  # time enough to have run the requeued request
    finally:
        restarted.terminate()
        assert restarted.wait(30) == 0
    assert later.exists()
    assert not killed.exists()


def test_rabbit_call_prints_the_fibonacci_result() -> None:
    out = StringIO()
    with serving("fib"):
        call_command("rabbit_call", "fib", "30", "--timeout", "20", stdout=out)
    assert out.getvalue().strip() == "832040"


def test_rabbit_call_passes_json_arguments_and_kwargs() -> None:
    out = StringIO()
    with serving("test.echo"):
        call_command("rabbit_call", "test.echo", "[1]", "x", "--kwargs", '{"k": null}', stdout=out)
    assert out.getvalue().strip() == '{"args": [[1], "x"], "kwargs": {"k": null}}'


def test_rabbit_call_reports_a_missing_server_as_a_command_error() -> None:
    with pytest.raises(CommandError, match="NoRoute"):
        call_command("rabbit_call", "nobody.serves.this", "--timeout", "5")


def test_rabbit_rpc_refuses_unknown_procedure_names() -> None:
    with pytest.raises(CommandError, match="no.such.procedure"):
        call_command("rabbit_rpc", "no.such.procedure")


def test_rabbit_setup_declares_the_rpc_queues(broker: Broker) -> None:
    call_command("rabbit_setup", stdout=StringIO())
    assert broker.queue_depth(rpc.queue_name("fib")) == 0
