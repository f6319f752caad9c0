"""Log lines per process through broker faults (issue 12.6).

A sync publisher, a worker (``rabbit_consume``), an RPC server (``rabbit_rpc``)
and the relay (``rabbit_outbox``) run as real processes with the demo's
``LOGGING`` while the broker closes every connection, stops for 20 s and is
SIGKILLed. Each process must log no traceback and no driver line, one WARNING
per lost connection and one INFO when it is back, and at most one line per
backoff step while the broker stays down.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import Broker, ctl, unique
from tests.workers import ROOT, migrate, worker_env

pytestmark = [pytest.mark.fault, pytest.mark.timeout(420)]

PROCESSES = {
    "publisher": ("-m", "tests.log_publisher"),
    "worker": ("manage.py", "rabbit_consume"),
    "rpc": ("manage.py", "rabbit_rpc"),
    "relay": ("manage.py", "rabbit_outbox"),
}
OUTAGE = 20
#: A forced close, a stop, a SIGKILL.
FAULTS = 3
#: Backoff steps (from 0.5 s, doubling) that fit in the outages, with room to spare.
MAX_STEPS = 15
LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")


#: Processes sharing one SQLite file: two files, so heartbeats and outbox rows lock apart.
DATABASES = {"publisher": "outbox", "relay": "outbox", "worker": "workers", "rpc": "workers"}


@pytest.fixture
def logs(tmp_path: Path, broker: Broker) -> Iterator[dict[str, Path]]:
    prefix = unique("logs")
    envs = {}
    for db in set(DATABASES.values()):
        path = tmp_path / f"{db}.sqlite3"
        migrate(prefix, path)
        envs[db] = worker_env(prefix, path)
    setup = [sys.executable, "manage.py", "rabbit_setup"]
    subprocess.run(setup, cwd=ROOT, env=envs["workers"], check=True, timeout=60)
    paths = {name: tmp_path / f"{name}.log" for name in PROCESSES}
    running = {
        name: subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=envs[DATABASES[name]],
            stdout=paths[name].open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, argv in PROCESSES.items()
    }
    try:
        assert broker.wait_for(lambda: len(broker.connection_names()) >= 5, 60), "not started"
        yield paths
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_faults_leave_one_warning_and_one_info_per_connection_and_no_traceback(
    broker: Broker, logs: dict[str, Path]
) -> None:
    before = len(broker.connection_names())
    broker.close_all_connections()
    assert broker.wait_for(lambda: len(broker.connection_names()) >= before, 30)
    time.sleep(2)
    ctl("stop_app")
    try:
        time.sleep(OUTAGE)
    finally:
        ctl("start_app")
        ctl("await_startup")
    # A worker retries at most every RECONNECT_MAX_DELAY (30 s) after the backoff has grown;
    # on a loaded machine the node's own boot takes part of the window too.
    all_back(broker, before, logs)
    time.sleep(2)
    broker.crash()
    all_back(broker, before, logs)
    time.sleep(2)
    for name, path in logs.items():
        text = path.read_text()
        print(f"--- {name}\n{text}")
        assert_quiet(name, text)


def all_back(broker: Broker, before: int, logs: dict[str, Path], timeout: float = 150) -> None:
    """Wait until every process has its connections again; else fail with what each logged."""
    if broker.wait_for(lambda: len(broker.connection_names()) >= before, timeout):
        return
    tails = {name: path.read_text().splitlines()[-8:] for name, path in logs.items()}
    pytest.fail(
        f"{len(broker.connection_names())} of {before} connections back after {timeout:g} s: "
        f"{broker.connection_names()}; last lines: {tails}"
    )


def assert_quiet(name: str, text: str) -> None:
    """No traceback, no driver line; per logger, each WARNING (a loss) has its INFO (back),
    and at most one line per backoff step in between."""
    assert "Traceback" not in text, name
    matched = [found.groups() for found in map(LINE.match, text.splitlines()) if found]
    # SQLite's lock contention between the test's processes is not the broker's doing.
    lines = [line for line in matched if "database is locked" not in line[2]]
    loud = [(logger, message) for level, logger, message in lines if level != "INFO"]
    assert not [line for line in loud if not line[0].startswith("rabbitbus.")], (name, loud)
    for logger in {logger for logger, _ in loud} | {"rabbitbus.transport.outage"}:
        warnings = [m for level, lg, m in lines if lg == logger and level == "WARNING"]
        backs = [m for level, lg, m in lines if lg == logger and "re-established" in m]
        steps = [m for level, lg, m in lines if lg == logger and "unreachable" in m]
        assert len(warnings) == len(backs) <= FAULTS, (name, logger, warnings, backs)
        assert all(" lost " in m or "unreachable" in m for m in warnings), (name, warnings)
        assert len(steps) <= MAX_STEPS, (name, logger, steps)
    assert any("re-established" in message for _, _, message in lines), name
