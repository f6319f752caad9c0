"""The RPC server: request handling pieces, and the small loop behind ``rabbit_rpc``.

The pieces (:func:`request_problem`, :func:`handle`) know nothing of how the
process runs, so the shared worker runtime can host them. :func:`serve` is
the seam: a self-contained aio-pika loop (prefetch, ``def`` procedures in a
thread pool inside ``close_old_connections``, graceful stop, robust reconnect).

Requests without ``reply_to`` or ``correlation_id`` are rejected unexecuted
(dropped, logged): an RPC nobody can receive the answer to is a caller bug,
and fire-and-forget work belongs on a consumer queue. Replies go only to
``reply_to`` addresses starting with one of ``RPC_REPLY_TO_PREFIXES``, so a
request cannot make the server publish into an arbitrary application queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
from django.db import close_old_connections

from rabbitbus import connections, serializers
from rabbitbus.conf import settings
from rabbitbus.exceptions import ConfigurationError, DecodeError, SerializationError
from rabbitbus.rpc import (
    REPLY_TYPE,
    Procedure,
    decode_request,
    error_reply,
    ok_reply,
    registered,
    rpc_queue,
)

logger = logging.getLogger("rabbitbus.rpc_server")


def request_problem(reply_to: str | None, correlation_id: str | None) -> str | None:
    """Why a request must not be executed, or ``None`` if it may."""
    if not reply_to:
        return "no reply_to"
    if not correlation_id:
        return "no correlation_id"
    if not reply_to.startswith(tuple(settings.RPC_REPLY_TO_PREFIXES)):
        return "reply_to is not a reply address"
    return None


def _in_db_scope(proc: Procedure, args: list[Any], kwargs: dict[str, Any]) -> Any:
    close_old_connections()
    try:
        return proc.func(*args, **kwargs)
    finally:
        close_old_connections()


async def run_procedure(
    proc: Procedure, args: list[Any], kwargs: dict[str, Any], executor: Executor | None
) -> Any:
    """Run ``proc``: ``async def`` on the loop, ``def`` in ``executor``."""
    if proc.is_async:
        return await proc.func(*args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, partial(_in_db_scope, proc, args, kwargs))


async def handle(
    proc: Procedure, body: bytes, content_type: str | None, executor: Executor | None = None
) -> bytes:
    """The reply body for one request; exceptions become error replies, never raise."""
    try:
        args, kwargs = decode_request(body, content_type)
    except DecodeError as exc:
        return error_reply(exc, code="bad_request")
    try:
        result = await run_procedure(proc, args, kwargs, executor)
    except Exception as exc:  # noqa: BLE001 - errors travel as data
        logger.info("RPC procedure %s raised %s", proc.name, type(exc).__name__)
        return error_reply(exc)
    try:
        return ok_reply(result)
    except SerializationError as exc:
        return error_reply(exc, code="bad_result")


def select(names: Sequence[str]) -> list[Procedure]:
    """The procedures to serve: ``names``, or all registered ones."""
    procedures = registered()
    unknown = sorted(set(names) - set(procedures))
    if unknown:
        raise ConfigurationError(f"Unknown RPC procedure(s): {', '.join(unknown)}")
    chosen = [procedures[name] for name in names] or list(procedures.values())
    if not chosen:
        raise ConfigurationError("No RPC procedures are registered (see <app>/rabbit.py).")
    return chosen


class RpcServer:
    """Consumes the queues of ``procedures`` on one channel and replies."""

    def __init__(self, procedures: Sequence[Procedure], executor: Executor | None) -> None:
        self.procedures = procedures
        self.executor = executor
        self.channel: Any = None
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._consumers: list[tuple[Any, str]] = []

    async def start(self, alias: str, prefetch: int) -> None:
        connection = await connections.get_async(alias).get()
        connection.reconnect_callbacks.add(self._on_reconnect)
        self.channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await self.channel.set_qos(prefetch_count=prefetch)
        for proc in self.procedures:
            spec = rpc_queue(proc.name)
            queue = await self.channel.declare_queue(
                spec.name, durable=spec.durable, arguments=spec.broker_arguments()
            )
            tag = await queue.consume(partial(self.on_message, proc))
            self._consumers.append((queue, tag))
        logger.info("Serving RPC: %s", ", ".join(proc.name for proc in self.procedures))

    async def stop(self) -> None:
        """Cancel the consumers, then let in-flight calls finish and reply."""
        for queue, tag in self._consumers:
            await queue.cancel(tag)
        if self.in_flight:
            await asyncio.wait(set(self.in_flight))
        await self.channel.close()

    async def on_message(
        self, proc: Procedure, message: aio_pika.abc.AbstractIncomingMessage
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        problem = request_problem(message.reply_to, message.correlation_id)
        if problem is not None:
            logger.warning(
                "Rejecting RPC request %s for %s: %s", message.message_id, proc.name, problem
            )
            await message.reject(requeue=False)
            return
        body = await handle(proc, message.body, message.content_type, self.executor)
        await self.reply(message, body)
        await message.ack()

    async def reply(self, request: aio_pika.abc.AbstractIncomingMessage, body: bytes) -> None:
        reply = aio_pika.Message(
            body,
            content_type=serializers.default().content_type,
            correlation_id=request.correlation_id,
            type=REPLY_TYPE,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        try:
            await self.channel.default_exchange.publish(
                reply, str(request.reply_to), mandatory=True
            )
        except (aio_pika.exceptions.DeliveryError, aiormq.exceptions.PublishError):
            # The caller is gone (timed out, disconnected): nothing to deliver to.
            logger.info("Reply to RPC %s was returned: its caller is gone", request.correlation_id)

    def _on_reconnect(self, *_: Any) -> None:
        logger.warning("RPC server reconnected; consumers restored: %d", len(self._consumers))


async def serve(
    names: Sequence[str],
    stop: asyncio.Event,
    *,
    alias: str = "default",
    prefetch: int = 20,
    concurrency: int = 10,
) -> None:
    """Serve procedures ``names`` (all if empty) until ``stop`` is set, then drain.

    This is the seam the shared worker runtime replaces: everything it needs
    per message is :meth:`RpcServer.on_message`.
    """
    executor = ThreadPoolExecutor(concurrency, thread_name_prefix="rabbitbus-rpc")
    server = RpcServer(select(names), executor)
    try:
        await server.start(alias, prefetch)
        await stop.wait()
        logger.info("Stopping RPC server: finishing %d call(s) in flight", len(server.in_flight))
        await server.stop()
    finally:
        executor.shutdown(wait=True)
        await connections.aclose_all()
