"""``rabbit_consume`` as a real process: signals, crashes, idempotency, health."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rabbitbus import publish_many, rpc
from rabbitbus.messages import Message
from tests.broker import Broker
from tests.rpc_support import call_in_thread
from tests.workers import ROOT, spawn_worker, worker_env


def start(
    workers: list,
    broker: Broker,
    prefix: str,
    db_path: Path,
    *args: str,
    output: Any = None,
    **env: str,
) -> subprocess.Popen:
    process = spawn_worker(prefix, db_path, *args, extra_env=env, output=output or subprocess.PIPE)
    workers.append(process)
    assert broker.wait_for(
        lambda: broker.consumers(f"{prefix}.effects", missing=0) == 1, timeout=60
    ), "worker did not start consuming"
    return process


def effects(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path, timeout=20) as db:
        return [row[0] for row in db.execute("SELECT message_id FROM testapp_effect")]


def send(prefix: str, count: int, sleep: float) -> list[str]:
    batch = [Message("", f"{prefix}.effects", {"sleep": sleep}) for _ in range(count)]
    result = publish_many(batch)
    assert result.ok
    return result.confirmed


def listing(prefix: str, tmp_path: Path, *args: str) -> str:
    """What ``rabbit_consume --list [args]`` prints (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "rabbit_consume", "--list", *args],
        cwd=ROOT,
        env=worker_env(prefix, tmp_path / "unused.sqlite3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_list_prints_handlers_queues_and_bindings(prefix: str, tmp_path: Path) -> None:
    out = listing(prefix, tmp_path)
    assert "tests.testapp.rabbit.apply_effect (sync)" in out
    assert f"queue={prefix}.effects (quorum)" in out
    assert "idempotent" in out


def test_list_says_which_consumers_run_inline(prefix: str, tmp_path: Path) -> None:
    assert "inline" not in listing(prefix, tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RABBITBUS_TEST_INLINE", "1")
        assert "idempotent inline" in listing(prefix, tmp_path)
        refused = subprocess.run(
            [sys.executable, "manage.py", "rabbit_consume", "--list", "--concurrency", "4"],
            cwd=ROOT, env=worker_env(prefix, tmp_path / "unused.sqlite3"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert refused.returncode != 0
    assert "inline=True runs one message at a time" in refused.stderr


#: The ``apply_effect`` consumer run in a thread (the default) or in the event loop's
#: thread (``inline=True``).
HANDLER_THREADS = pytest.mark.parametrize("inline", ["0", "1"], ids=["threads", "inline"])


@pytest.mark.parametrize(
    ("signum", "inline"),
    [(signal.SIGTERM, "0"), (signal.SIGINT, "0"), (signal.SIGTERM, "1")],
    ids=["SIGTERM", "SIGINT", "SIGTERM-inline"],
)
def test_a_signal_drains_in_flight_work_and_exits_zero(
    broker: Broker, prefix: str, db_path: Path, workers: list, signum: int, inline: str
) -> None:
    queue = f"{prefix}.effects"
    first = start(workers, broker, prefix, db_path, RABBITBUS_TEST_INLINE=inline)
    ids = send(prefix, 5, sleep=1.0)
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 0, timeout=10)  # all prefetched
    time.sleep(0.3)  # the first handler is running
    first.send_signal(signum)
    assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 0, timeout=2)
    assert first.wait(timeout=30) == 0
    done = effects(db_path)
    assert len(done) == 1  # the one in hand finished, the rest were left alone
    assert broker.wait_for(lambda: broker.unacked(queue) == 0, timeout=10)
    assert broker.queue_depth(queue) == 5 - len(done)
    start(workers, broker, prefix, db_path)
    assert broker.wait_for(lambda: len(effects(db_path)) == 5, timeout=30)
    assert sorted(effects(db_path)) == sorted(ids)


@HANDLER_THREADS
def test_a_database_outage_holds_the_messages_and_loses_none(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path, inline: str
) -> None:
    """F21: the handler's database goes away (its file replaced by a directory, so no
    connection opens) for four seconds. Nothing is retried, dead-lettered or acked
    meanwhile, the worker does not spin, and every message is applied once after."""
    queue = f"{prefix}.effects"
    log = (tmp_path / "worker.log").open("w+")
    worker = start(workers, broker, prefix, db_path, output=log, RABBITBUS_TEST_INLINE=inline)
    away = db_path.with_suffix(".away")
    db_path.rename(away)
    db_path.mkdir()
    try:
        ids = send(prefix, 5, sleep=0)
        assert broker.wait_for(lambda: broker.unacked(queue) == 5, timeout=10)
        cpu = cpu_seconds(worker.pid)
        time.sleep(4)
        assert cpu_seconds(worker.pid) - cpu < 1.0  # backing off, not spinning
        assert broker.unacked(queue) == 5  # held: not acked, not requeued
        assert broker.queue_depth(f"{queue}.dlq") == 0
    finally:
        db_path.rmdir()
        away.rename(db_path)
    assert broker.wait_for(lambda: len(effects(db_path)) == 5, timeout=30)
    assert sorted(effects(db_path)) == sorted(ids)
    assert broker.wait_for(lambda: broker.unacked(queue) == 0)
    assert broker.queue_depth(f"{queue}.dlq") == 0
    assert worker.poll() is None
    log.seek(0)
    text = log.read()
    assert text.count("Database unreachable (OperationalError: unable to open database") == 1
    assert "Database reachable again" in text
    assert "failed on message" not in text  # no attempt was counted


def test_sigterm_during_a_database_outage_gives_the_held_messages_back(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path
) -> None:
    queue, log = f"{prefix}.effects", tmp_path / "worker.log"
    with log.open("w") as output:  # a file, read on failure (a pipe is read only at the end)
        worker = start(workers, broker, prefix, db_path, output=output)
    away = db_path.with_suffix(".away")
    db_path.rename(away)
    db_path.mkdir()
    try:
        send(prefix, 3, sleep=0)
        assert broker.wait_for(lambda: broker.unacked(queue) == 3, timeout=10)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, log.read_text()[-4000:]  # not the 30 s grace
    finally:
        db_path.rmdir()
        away.rename(db_path)
    assert broker.wait_for(lambda: broker.unacked(queue) == 0)
    assert broker.queue_depth(queue) == 3  # requeued for the next worker, no attempt counted
    assert broker.queue_depth(f"{queue}.dlq") == 0
    assert effects(db_path) == []


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_worker_runs_on_the_chosen_event_loop(
    broker: Broker, prefix: str, db_path: Path, workers: list, loop: str
) -> None:
    process = start(workers, broker, prefix, db_path, "--loop", loop)
    ids = send(prefix, 3, sleep=0)
    assert broker.wait_for(lambda: sorted(effects(db_path)) == sorted(ids), timeout=20)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"Event loop: {loop}" in output


def test_a_second_signal_exits_at_once_and_loses_nothing(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    queue = f"{prefix}.effects"
    first = start(workers, broker, prefix, db_path)
    ids = send(prefix, 2, sleep=20)
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 0, timeout=10)
    time.sleep(0.3)
    first.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=5) == 128 + signal.SIGTERM
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 2, timeout=10)
    assert effects(db_path) == []
    assert len(ids) == 2


@HANDLER_THREADS
def test_sigkill_mid_handler_then_restart_applies_each_effect_once(
    broker: Broker, prefix: str, db_path: Path, workers: list, inline: str
) -> None:
    first = start(workers, broker, prefix, db_path, RABBITBUS_TEST_INLINE=inline)
    ids = send(prefix, 6, sleep=0.4)
    assert broker.wait_for(lambda: len(effects(db_path)) >= 2, timeout=20)
    first.kill()
    first.wait(timeout=10)
    start(workers, broker, prefix, db_path)
    assert broker.wait_for(lambda: len(effects(db_path)) >= 6, timeout=30)
    time.sleep(0.5)
    assert sorted(effects(db_path)) == sorted(ids)  # every id once: no loss, no duplicate


def test_three_crashes_in_a_row_dead_letter_nothing_by_default(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    """F16b: a worker holding all of its prefetch is SIGKILLed three times in a row. Its
    quorum queue's delivery limit (20 by default) counts each crash against every message
    it held; none reaches the limit, and each is applied once in the end."""
    queue = f"{prefix}.effects"
    worker = start(workers, broker, prefix, db_path)
    ids = send(prefix, 10, sleep=1)
    for crash in range(3):
        if crash:
            worker = start(workers, broker, prefix, db_path)
        # Ready plus applied short of ten means the worker holds a delivery (quorum queues'
        # unacked count in rabbitmqctl lags under load, so it is not asked here).
        assert broker.wait_for(
            lambda: broker.queue_depth(queue) + len(effects(db_path)) < 10, timeout=30
        )
        worker.kill()
        worker.wait(timeout=10)
    start(workers, broker, prefix, db_path)
    assert broker.wait_for(lambda: len(effects(db_path)) >= 10, timeout=40)
    assert sorted(effects(db_path)) == sorted(ids)
    assert broker.queue_depth(f"{queue}.dlq") == 0


@HANDLER_THREADS
def test_a_redelivered_message_id_is_acked_without_its_effect(
    broker: Broker, prefix: str, db_path: Path, workers: list, inline: str
) -> None:
    start(workers, broker, prefix, db_path, RABBITBUS_TEST_INLINE=inline)
    queue = f"{prefix}.effects"
    batch = [Message("", queue, {"n": n}, message_id="same-id") for n in range(3)]
    assert publish_many([batch[0]]).ok and publish_many(batch[1:]).ok
    assert broker.wait_for(lambda: effects(db_path), timeout=10)
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 0)
    time.sleep(1)
    assert effects(db_path) == ["same-id"]
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT consumer, message_id FROM rabbitbus_processedmessage").fetchall()
    assert rows == [("tests.testapp.rabbit.apply_effect", "same-id")]


def test_check_answers_from_the_heartbeat_file_and_a_row_is_kept(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path
) -> None:
    alive = tmp_path / "alive"
    env = worker_env(prefix, db_path, {"RABBITBUS_TEST_HEARTBEAT": str(alive)})
    command = [sys.executable, "manage.py", "rabbit_consume", "--check"]

    def check() -> int:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, timeout=60
        ).returncode

    assert check() == 1
    process = start(workers, broker, prefix, db_path, RABBITBUS_TEST_HEARTBEAT=str(alive))
    send(prefix, 3, sleep=0)
    assert broker.wait_for(alive.exists, timeout=10)
    assert check() == 0
    assert broker.wait_for(lambda: heartbeat_row(db_path, process.pid)[0] == 3, timeout=10)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert check() == 1


def heartbeat_row(db_path: Path, pid: int) -> tuple[int, str]:
    with sqlite3.connect(db_path, timeout=20) as db:
        row = db.execute(
            "SELECT processed, consumers FROM rabbitbus_workerheartbeat WHERE pid = ?", (pid,)
        ).fetchone()
    return row or (-1, "")


RPC_QUEUE = rpc.queue_name("test.touch")


def start_with_rpc(
    workers: list, broker: Broker, prefix: str, db_path: Path, output: Any = None
) -> subprocess.Popen:
    """A consumer worker that also serves ``test.touch`` (``--rpc test.touch``)."""
    process = start(workers, broker, prefix, db_path, "--rpc", "test.touch", output=output)
    assert broker.wait_for(lambda: broker.consumers(RPC_QUEUE, missing=0) == 1, timeout=30)
    return process


def test_list_with_rpc_prints_the_procedures_too(prefix: str, tmp_path: Path) -> None:
    out = listing(prefix, tmp_path, "--rpc", "fib")
    assert "tests.testapp.rabbit.apply_effect (sync)" in out
    # fib is registered with concurrency=2 (below the server's 10): the listing shows its cap.
    assert "rpc:fib (sync) queue=rpc.fib (classic) prefetch=20 concurrency=2" in out


def test_rpc_option_answers_calls_beside_the_consumers(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path
) -> None:
    process = start_with_rpc(workers, broker, prefix, db_path)
    target = tmp_path / "ran"
    assert rpc.call("test.touch", str(target), timeout=10) == str(target)
    assert target.exists()
    ids = send(prefix, 2, sleep=0)
    assert broker.wait_for(lambda: sorted(effects(db_path)) == sorted(ids), timeout=10)
    assert broker.wait_for(lambda: heartbeat_row(db_path, process.pid)[0] >= 3, timeout=10)
    assert "rpc:test.touch" in heartbeat_row(db_path, process.pid)[1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_sigterm_during_a_call_still_replies_and_exits_zero(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as output:  # a file, read on failure (a pipe is read only at the end)
        process = start_with_rpc(workers, broker, prefix, db_path, output=output)
    target = tmp_path / "ran"
    # The call runs 8 s: long enough that polling rabbitmqctl (seconds a call on a loaded
    # machine) cannot miss it in flight and see it acked already.
    thread, outcome = call_in_thread("test.touch", str(target), 8.0, timeout=40)
    assert broker.wait_for(lambda: broker.unacked(RPC_QUEUE) == 1, timeout=20)
    assert not target.exists()  # delivered and not finished: the call is in flight
    process.send_signal(signal.SIGTERM)
    assert broker.wait_for(lambda: broker.consumers(RPC_QUEUE, missing=0) == 0, timeout=5)
    thread.join(30)
    assert outcome == {"result": str(target)}
    assert process.wait(timeout=30) == 0, log.read_text()[-4000:]
    assert broker.queue_depth(RPC_QUEUE) == 0


@pytest.mark.fault  # changes consumer_timeout node-wide: run under the node lock
@pytest.mark.soak  # RabbitMQ checks the timeout about once a minute
@pytest.mark.timeout(400)
def test_a_handler_slower_than_consumer_timeout_is_redelivered_and_applied_once(
    broker: Broker, prefix: str, db_path: Path, workers: list, tmp_path: Path
) -> None:
    queue, release, log = f"{prefix}.effects", tmp_path / "release", tmp_path / "worker.log"
    with log.open("w") as output:
        with broker.consumer_timeout(3000):  # only the worker's channel, opened now, keeps it
            process = start(workers, broker, prefix, db_path, output=output)
        [message_id] = publish_many([Message("", queue, {"until": str(release)})]).confirmed

        def warned() -> bool:
            return "consumer_timeout" in log.read_text()

        assert broker.wait_for(warned, timeout=180, interval=1)
        assert broker.wait_for(lambda: broker.consumers(queue) == 1, timeout=20)
        release.touch()  # the first run ends and commits; the redelivery finds it done
        assert broker.wait_for(lambda: broker.unacked(queue) == 0, timeout=60)
        assert process.poll() is None
    assert effects(db_path) == [message_id]
    assert broker.queue_depth(queue) == 0
    [warning] = [line for line in log.read_text().splitlines() if "consumer_timeout" in line]
    assert "WARNING" in warning and "Traceback" not in log.read_text()
