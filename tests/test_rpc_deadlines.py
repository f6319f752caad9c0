"""Issue 12, item 1: no server starts a request past its caller's deadline.

The issue's scenario: 14 calls with a 2 s timeout to a procedure that takes 4 s,
served with prefetch 20 and concurrency 10. Ten requests start at once; the other
four wait in the server's prefetch buffer for a slot until long after their callers
gave up (4 s > 2 s + ``DEADLINE_GRACE``), and must then be dropped unstarted. The
procedures write a ledger of the requests that started (a file, so that a server
process's runs are seen too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from rabbitbus import rpc
from rabbitbus.exceptions import RpcTimeout
from rabbitbus.rpc import server as rpc_server
from rabbitbus.transport import amqp_tap, connections, frames
from tests.broker import Broker
from tests.rpc_support import call_in_thread, serving
from tests.workers import ROOT

pytestmark = pytest.mark.timeout(90)

CALLS = 14
CONCURRENCY = 10
TIMEOUT = 2.0
#: Longer than TIMEOUT + DEADLINE_GRACE: the requests that wait for a slot expire meanwhile.
SLOW = TIMEOUT + rpc.DEADLINE_GRACE + 1.0
DROPPING = "Dropping RPC requests to"
#: Whitespace after a request's JSON: a body the server's tap leaves to aiormq.
PAD = b" " * (amqp_tap.MAX_HELD + 1)


def ran(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def dropping_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage().startswith(DROPPING)]


@pytest.fixture
def driver_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The correlation ids of the requests aiormq delivered (not the server's tap)."""
    seen: list[str] = []
    through_aiormq = rpc_server.RpcService.on_message

    async def on_message(self: rpc_server.RpcService, message: Any) -> None:
        seen.append(str(message.header.properties.correlation_id))
        await through_aiormq(self, message)

    monkeypatch.setattr(rpc_server.RpcService, "on_message", on_message)
    return seen


def assert_only_the_first_ten_ran(ledger: Path, broker: Broker, queue: str) -> None:
    """Once every request is settled (acked), exactly CONCURRENCY ran."""
    assert broker.wait_for(lambda: len(ran(ledger)) >= CONCURRENCY, timeout=20)
    assert broker.wait_for(lambda: broker.unacked(queue) == 0, timeout=SLOW + 20, interval=0.5)
    assert len(ran(ledger)) == CONCURRENCY, ran(ledger)


def test_def_procedure_skips_requests_that_waited_for_a_slot_past_their_deadline(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, driver_path: list[str]
) -> None:
    ledger = tmp_path / "ledger"
    caplog.set_level(logging.INFO, logger="rabbitbus.rpc.server")
    with serving("test.ledger", prefetch=20) as server:
        started = [
            call_in_thread("test.ledger", str(ledger), str(n), SLOW, timeout=TIMEOUT)
            for n in range(CALLS)
        ]
        for thread, _ in started:
            thread.join(TIMEOUT + 20)
        assert all(isinstance(outcome.get("error"), RpcTimeout) for _, outcome in started)
        assert_only_the_first_ten_ran(ledger, broker, rpc.queue_name("test.ledger"))
        stats = server.stats()
    assert (stats["processed"], stats["expired"]) == (CONCURRENCY, CALLS - CONCURRENCY)
    assert len(dropping_lines(caplog.records)) == 1  # once per burst, not per request
    assert driver_path == []  # the tap read every request, deadline header included


async def test_async_procedure_skips_requests_that_waited_for_a_slot_past_their_deadline(
    broker: Broker, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    with serving("test.aledger", prefetch=20) as server:
        calls = [
            rpc.acall("test.aledger", str(ledger), str(n), SLOW, timeout=TIMEOUT)
            for n in range(CALLS)
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        await connections.aclose_all()
        assert all(isinstance(outcome, RpcTimeout) for outcome in outcomes)
        await asyncio.to_thread(
            assert_only_the_first_ten_ran, ledger, broker, rpc.queue_name("test.aledger")
        )
        assert server.stats()["expired"] == CALLS - CONCURRENCY


def raw_requests(
    broker: Broker, name: str, ledger: Path, deadline: int | None, seconds: float = SLOW
) -> None:
    """CALLS requests to ``name`` by raw pika, each too big for the server's tap to hold
    (JSON padded with whitespace, so aiormq delivers them: the driver path), and the
    caller gone after TIMEOUT seconds, as rabbitbus's would be."""
    connection = pika.BlockingConnection(broker.parameters())
    try:
        channel = connection.channel()
        channel.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        headers: dict[str, Any] = {"trace-id": "abc"}
        if deadline is not None:
            headers[frames.DEADLINE_HEADER] = deadline
        for n in range(CALLS):
            properties = pika.BasicProperties(
                content_type="application/json",
                correlation_id=f"raw-{n}",
                reply_to="amq.rabbitmq.reply-to",
                expiration=str(int(TIMEOUT * 1000)),
                headers=headers,
            )
            body = f'{{"args": ["{ledger}", "{n}", {seconds}]}}'.encode() + PAD
            channel.basic_publish("", rpc.queue_name(name), body, properties)
        connection.process_data_events(time_limit=TIMEOUT)
    finally:
        connection.close()


@pytest.mark.parametrize("name", ["test.ledger", "test.aledger"])
def test_requests_the_driver_delivers_are_skipped_past_their_deadline_too(
    broker: Broker, tmp_path: Path, name: str, driver_path: list[str]
) -> None:
    ledger = tmp_path / "ledger"
    with serving(name, prefetch=20) as server:
        raw_requests(broker, name, ledger, rpc.deadline_after(TIMEOUT))
        assert_only_the_first_ten_ran(ledger, broker, rpc.queue_name(name))
        assert server.stats()["expired"] == CALLS - CONCURRENCY
    assert len(driver_path) == CALLS


def test_a_request_without_a_deadline_still_runs(broker: Broker, tmp_path: Path) -> None:
    """Older clients send no deadline header: their requests run as before (the queue's
    ``expiration`` is all they have)."""
    ledger = tmp_path / "ledger"
    with serving("test.aledger", prefetch=20) as server:
        raw_requests(broker, "test.aledger", ledger, None, seconds=0.1)
        assert broker.wait_for(lambda: len(ran(ledger)) == CALLS, timeout=20)
        assert server.stats()["expired"] == 0


def test_a_request_already_past_its_deadline_on_arrival_never_runs(
    broker: Broker, tmp_path: Path
) -> None:
    """What a server whose clock is ahead, or a request held up on the way, looks like."""
    ledger = tmp_path / "ledger"
    with serving("test.ledger") as server:
        late = rpc.deadline_after(-rpc.DEADLINE_GRACE - 1)
        raw_requests(broker, "test.ledger", ledger, late)
        assert broker.wait_for(lambda: server.stats()["expired"] == CALLS, timeout=10)
    assert ran(ledger) == []


# -- the server commands -------------------------------------------------------------


@pytest.fixture
def command(request: pytest.FixtureRequest, broker: Broker) -> Iterator[subprocess.Popen[str]]:
    """``rabbit_rpc test.ledger`` or ``rabbit_consume --rpc test.aledger``, defaults
    (prefetch 20, concurrency 10), as a process."""
    argv, queue = request.param
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = broker.wait_for(lambda: broker.consumers(queue, missing=0) > 0, timeout=30)
        assert started, "server did not start"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


@pytest.mark.parametrize(
    "command",
    [
        (["rabbit_rpc", "test.ledger"], rpc.queue_name("test.ledger")),
        (["rabbit_consume", "--rpc", "test.aledger"], rpc.queue_name("test.aledger")),
    ],
    indirect=True,
    ids=["rabbit_rpc-def", "rabbit_consume-rpc-async"],
)
def test_server_commands_never_start_a_request_past_its_deadline(
    broker: Broker, tmp_path: Path, command: subprocess.Popen[str]
) -> None:
    ledger = tmp_path / "ledger"
    name = command.args[-1]  # type: ignore[index]
    started = [
        call_in_thread(name, str(ledger), str(n), SLOW, timeout=TIMEOUT) for n in range(CALLS)
    ]
    for thread, _ in started:
        thread.join(TIMEOUT + 20)
    assert all(isinstance(outcome.get("error"), RpcTimeout) for _, outcome in started)
    assert_only_the_first_ten_ran(ledger, broker, rpc.queue_name(name))
    command.send_signal(signal.SIGTERM)
    assert command.wait(30) == 0
    assert command.stderr is not None
    assert command.stderr.read().count(DROPPING) == 1
    assert len(ran(ledger)) == CONCURRENCY
