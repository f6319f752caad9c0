"""Helpers for the RPC tests: an in-process server thread and a raw replying server."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pika

from rabbitbus import rpc
from rabbitbus.rpc import server as rpc_server
from rabbitbus.runtime.service import Runtime
from tests.broker import Broker
from tests.workers import ThreadRuntime


@contextlib.contextmanager
def serving(*names: str, prefetch: int = 20) -> Iterator[ThreadRuntime]:
    """Serve ``names`` on a runtime in a thread until the block ends (drained then)."""

    def make() -> Runtime:
        return Runtime(rpc_server.services(names, prefetch=prefetch))

    broker = Broker(os.environ["RABBITBUS_TEST_VHOST"])
    with ThreadRuntime(make, kind="rpc").start(broker) as server:
        yield server


def call_in_thread(*args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``rpc.call(*args, **kwargs)`` in a thread; the dict gets its result or error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = rpc.call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


Responder = Callable[[Any, Any, Any, bytes], None]


@contextlib.contextmanager
def raw_server(broker: Broker, queue: str, respond: Responder) -> Iterator[None]:
    """A pika consumer on ``queue`` calling ``respond(channel, method, properties, body)``."""
    connection = pika.BlockingConnection(broker.parameters())
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})
    channel.basic_consume(queue, lambda *a: respond(*a), auto_ack=True)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            connection.process_data_events(time_limit=0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        connection.close()


def reply(channel: Any, properties: Any, body: bytes, correlation_id: str | None = None) -> None:
    """Publish a reply as a server would (optionally under another correlation id)."""
    channel.basic_publish(
        "",
        properties.reply_to,
        body,
        pika.BasicProperties(
            content_type="application/json",
            correlation_id=correlation_id or properties.correlation_id,
        ),
    )
