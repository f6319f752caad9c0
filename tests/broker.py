"""Control of the local RabbitMQ node for tests, through ``rabbitmqctl``.

Everything that changes node-wide state (alarms, restarts, a crash) restores it in
``finally`` blocks at the call sites; the fault tests that use them run last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions

CTL_TIMEOUT = 60

# The node under test: 127.0.0.1:5672 unless a run points elsewhere (scripts/test_node.sh
# starts a private node, so that tests which stop or crash a broker disturb no one else;
# rabbitmqctl and rabbitmq-server follow RABBITMQ_NODENAME and friends from the same env).
AMQP_PORT = int(os.environ.get("RABBITBUS_TEST_AMQP_PORT", "5672"))
MANAGEMENT_PORT = int(os.environ.get("RABBITBUS_TEST_MANAGEMENT_PORT", "15672"))
UPSTREAM = ("127.0.0.1", AMQP_PORT)


def ctl(*args: str, check: bool = True) -> str:
    """Run ``rabbitmqctl`` and return its output."""
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=CTL_TIMEOUT
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def started() -> bool:
    """Whether the node is up and has finished booting (fails at once while it is down)."""
    command = ["rabbitmqctl", "-q", "await_startup", "--timeout", "60"]
    return subprocess.run(command, capture_output=True, timeout=CTL_TIMEOUT + 10).returncode == 0


def add_vhost(name: str) -> None:
    ctl("add_vhost", name)
    ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def delete_vhost(name: str) -> None:
    ctl("delete_vhost", name, check=False)


@dataclass
class Broker:
    """The node, seen from one test vhost."""

    vhost: str

    def url(self, host: str = "127.0.0.1", port: int = AMQP_PORT) -> str:
        return f"amqp://guest:guest@{host}:{port}/{self.vhost}"

    def parameters(self, **options: object) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            host="127.0.0.1", port=AMQP_PORT, virtual_host=self.vhost, **options
        )

    @contextlib.contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """A raw pika channel in the test vhost (for setup and inspection)."""
        connection = pika.BlockingConnection(self.parameters())
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def queue_depth(self, queue: str) -> int:
        with self.channel() as channel:
            return int(channel.queue_declare(queue, passive=True).method.message_count)

    def consumers(self, queue: str, missing: int | None = None) -> int:
        """Consumers of ``queue``; ``missing`` if given is the answer for no such queue."""
        try:
            with self.channel() as channel:
                return int(channel.queue_declare(queue, passive=True).method.consumer_count)
        except pika.exceptions.ChannelClosedByBroker:
            if missing is None:
                raise
            return missing

    def unacked(self, queue: str) -> int:
        """Messages of ``queue`` delivered and not yet acknowledged."""
        out = ctl("list_queues", "-p", self.vhost, "name", "messages_unacknowledged")
        for line in out.splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        raise AssertionError(f"no queue {queue}")

    def connection_names(self) -> list[str]:
        out = ctl("list_connections", "vhost", "name", "client_properties")
        return [line for line in out.splitlines() if line.startswith(self.vhost + "\t")]

    def close_all_connections(self, reason: str = "test: closing connections") -> None:
        ctl("close_all_connections", "-p", self.vhost, reason)

    def restart_app(self) -> None:
        try:
            ctl("stop_app")
        finally:
            ctl("start_app")
            ctl("await_startup")

    def crash(self) -> None:
        """SIGKILL the node's Erlang VM (a power cut, as far as RabbitMQ can tell), start it
        again and wait until it serves: only what it had on disk survives."""
        self.kill()
        self.boot()
        self.await_boot()

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM and wait until it is gone (call :meth:`boot` after)."""
        pid = int(ctl("eval", "list_to_integer(os:getpid()).").strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def boot(self) -> None:
        """Start the killed node; it serves a few seconds later (:meth:`await_boot`)."""
        # Debian's wrapper runs the server as the rabbitmq user, as at boot.
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)

    def await_boot(self) -> None:
        """Wait until the booted node serves (two minutes at most)."""
        deadline = time.monotonic() + 120
        while not started():
            if time.monotonic() > deadline:
                raise RuntimeError("RabbitMQ did not come back after the crash")
            time.sleep(0.5)

    @contextlib.contextmanager
    def memory_alarm(self) -> Iterator[None]:
        """Block publishers node-wide while inside the block."""
        ctl("set_vm_memory_high_watermark", "0")
        try:
            yield
        finally:
            ctl("set_vm_memory_high_watermark", "0.4")

    @contextlib.contextmanager
    def disk_alarm(self) -> Iterator[None]:
        """Block publishers node-wide, as a full disk does, while inside the block."""
        limit = ctl("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        ctl("set_disk_free_limit", str(10**13))  # 10 TB free: more than any disk here
        try:
            yield
        finally:
            ctl("set_disk_free_limit", limit if limit.isdigit() else "50MB")

    @contextlib.contextmanager
    def consumer_timeout(self, milliseconds: int) -> Iterator[None]:
        """Node-wide ``consumer_timeout`` inside the block (hold the node lock).

        A channel reads it when it opens: channels opened inside the block keep
        it after the default (30 minutes) is restored on the way out.
        """
        ctl("eval", f"application:set_env(rabbit, consumer_timeout, {int(milliseconds)}).")
        try:
            yield
        finally:
            ctl("eval", "application:set_env(rabbit, consumer_timeout, 1800000).")

    def wait_for(self, predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
        """Poll ``predicate`` until true or ``timeout``; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()  # type: ignore[operator]
            if value or time.monotonic() >= deadline:
                return bool(value)
            time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def rabbitbus_through(port: int, **options: object) -> dict[str, object]:
    """RABBITBUS settings whose ``default`` connection goes through a local proxy on ``port``.

    ``options`` override the default connection's; the ``direct`` connection goes
    straight to the broker (for a test's own publishing and inspection).
    """
    from django.conf import settings

    url = f"amqp://guest:guest@127.0.0.1:{port}/{settings.TEST_VHOST}"
    defaults = {"URL": url, "RECONNECT_TIMEOUT": 10, "PUBLISH_TIMEOUT": 5}
    direct = {"URL": settings.TEST_URL, "RECONNECT_TIMEOUT": 10}
    return {"CONNECTIONS": {"default": {**defaults, **options}, "direct": direct}}
