"""Helpers for the RPC tests: an in-process server thread and a raw replying server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pika

from rabbitbus import rpc_server
from tests.broker import Broker


@contextlib.contextmanager
def serving(*names: str, prefetch: int = 20) -> Iterator[None]:
    """Serve ``names`` from a thread with its own event loop until the block ends."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            task = asyncio.create_task(rpc_server.serve(names, stop, prefetch=prefetch))
            while not task.done() and not _consuming(names):
                await asyncio.sleep(0.02)
            started.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
            started.set()
        finally:
            _close(loop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(15), "RPC server did not start"
    assert not errors, errors
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "RPC server did not stop"
        assert not errors, errors


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Let aio-pika's leftover tasks finish before the loop goes away."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _consuming(names: tuple[str, ...]) -> bool:
    import os

    broker = Broker(os.environ["RABBITBUS_TEST_VHOST"])
    try:
        return all(broker.consumers(f"rpc.{name}") > 0 for name in names)
    except pika.exceptions.ChannelClosedByBroker:
        return False


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
