"""A one-off event loop ends soon after its last call, whatever the broker was doing.

Each test runs tests/loop_exit_child.py in a subprocess: ``asyncio.run`` (or
``async_to_sync``) around repeated ``apublish_many`` of 3,000 messages or ``acall``,
while the broker is SIGKILLed and restarted or the network goes silent; the child's
loop then ends, and the process must exit within 10 s of its last call returning.
Marked ``fault``: run serially, last, on a private node.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.broker import Broker, unique
from tests.fault_proxy import FaultProxy

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

#: Seconds between the last call returning and the process exiting, at most.
EXIT_BOUND = 10


class Child:
    """The child process, its output lines and when each arrived."""

    def __init__(self, call: str, runner: str, url: str, queue: str, stop: Path) -> None:
        command = [sys.executable, "-m", "tests.loop_exit_child", call, runner, str(stop), url]
        self.process = subprocess.Popen(
            [*command, queue], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
        )
        self.stop = stop
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def returned(self) -> list[tuple[float, str]]:
        return [(at, line) for at, line in self.lines if line.startswith("returned")]

    def wait_for_a_call(self, broker: Broker) -> None:
        assert broker.wait_for(lambda: self.returned(), timeout=30), self.lines

    def end_and_time_exit(self) -> float:
        """Seconds from the last call's return to the process's exit (fails if it hangs)."""
        self.stop.touch()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the process hung after its loop's last call: {self.lines}")
        exited = time.monotonic()
        assert self.process.returncode == 0, self.lines
        assert self.lines[-1][1] == "loop ended", self.lines
        return exited - self.returned()[-1][0]


@pytest.fixture
def durable_queue(broker: Broker) -> Iterator[str]:
    name = unique("loop_exit.q")
    with broker.channel() as channel:
        channel.queue_declare(name, durable=True)
    yield name
    with broker.channel() as channel:
        channel.queue_delete(name)


def down(broker: Broker, child: Child) -> float:
    """The loop ends while the node is dead (its port refuses)."""
    broker.kill()
    try:
        return child.end_and_time_exit()
    finally:
        broker.boot()
        broker.await_boot()


def booting(broker: Broker, child: Child) -> float:
    """The loop ends while the node boots and reconnect attempts come and go."""
    broker.kill()
    broker.boot()
    try:
        return child.end_and_time_exit()
    finally:
        broker.await_boot()


def back(broker: Broker, child: Child) -> float:
    """The loop ends after the node is back and the connection reopened."""
    broker.crash()
    time.sleep(2)  # the robust connection's next reconnect attempt (1 s apart) succeeds
    return child.end_and_time_exit()


@pytest.mark.parametrize(
    ("call", "runner", "phase"),
    [
        ("apublish_many", "asyncio.run", down),
        ("acall", "asyncio.run", booting),
        ("apublish_many", "async_to_sync", back),
    ],
    ids=["apublish_many-asyncio.run-down", "acall-asyncio.run-booting", "async_to_sync-back"],
)
def test_the_loop_ends_soon_after_a_sigkilled_broker(
    broker: Broker,
    durable_queue: str,
    tmp_path: Path,
    call: str,
    runner: str,
    phase: Callable[[Broker, Child], float],
) -> None:
    child = Child(call, runner, broker.url(), durable_queue, tmp_path / "stop")
    child.wait_for_a_call(broker)
    assert phase(broker, child) < EXIT_BOUND


@pytest.mark.parametrize(
    ("call", "runner"), [("apublish_many", "asyncio.run"), ("acall", "async_to_sync")]
)
def test_the_loop_ends_soon_while_a_reconnect_attempt_is_under_way(
    broker: Broker, durable_queue: str, tmp_path: Path, proxy: FaultProxy, call: str, runner: str
) -> None:
    """The connection is dropped and the network goes silent: every reconnect attempt
    hangs (for the child's CONNECTION_TIMEOUT, 30 s) when the loop ends. aio-pika would
    swallow the loop's cancel and try again, forever."""
    url = broker.url(port=proxy.port)
    child = Child(call, runner, url, durable_queue, tmp_path / "stop")
    child.wait_for_a_call(broker)
    proxy.blackhole()
    proxy.drop_all()
    connections = proxy.stats["connections"]
    assert broker.wait_for(lambda: proxy.stats["connections"] > connections, timeout=10)
    assert child.end_and_time_exit() < EXIT_BOUND
