"""The async RPC client behind :func:`rabbitbus.rpc.acall`: aiormq, direct reply-to,
a future per correlation id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from rabbitbus.conf import settings
from rabbitbus.exceptions import AccessRefused, BrokerUnavailable, RpcError
from rabbitbus.messages import Delivery
from rabbitbus.rpc.procedures import DIRECT_REPLY_TO, result_from_reply
from rabbitbus.rpc.requests import (
    CONSUMER_CHECK_LIMIT,
    Reply,
    Request,
    aiormq_properties,
    connection_lost,
    no_route,
    not_sent,
    request,
    timed_out,
)
from rabbitbus.transport import aio, connections

logger = logging.getLogger("rabbitbus.rpc.client")  # one logger name for both clients

#: Most calls one async client keeps in flight; more raise :class:`RpcError`.
MAX_PENDING = 10_000
#: Longest a failed queue check waits for aiormq to finish closing its channel (seconds).
SETTLE = 1.0


class AsyncRpcClient:
    """One loop's calls: one direct reply-to consumer, a future per correlation id.

    Requests are ``mandatory``, as the sync client's are: with no queue for the
    procedure (never declared, or deleted since the last call) the broker returns
    the request and the call raises :class:`NoRoute` at once. With ``FAST_PATHS``
    on, they go out without publisher confirms (a confirm per call costs the
    client and the broker about a fifth of their CPU per call, see
    docs/benchmarks.md) and :func:`~rabbitbus.transport.aio.on_returns` reads the
    returns; off, each request waits for its confirm, after any return.
    """

    def __init__(self, conn: connections.AsyncConnection) -> None:
        self.conn = conn
        self.pending: dict[str, asyncio.Future[Reply]] = {}
        self._robust: Any = None
        self._channel: aio.Channel | None = None
        self._lock = asyncio.Lock()

    async def call(self, name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Any:
        req = request(name, args, kwargs, timeout)
        if len(self.pending) >= MAX_PENDING:
            raise RpcError(f"Over {MAX_PENDING} RPC calls in flight on this loop.")
        cid = req.correlation_id
        future = self.pending[cid] = asyncio.get_running_loop().create_future()
        channel = None
        try:
            async with asyncio.timeout(timeout):
                channel = await self._ready(name)
                await self._publish(channel, name, req)
                reply = await future
        except _Returned:
            raise no_route(name) from None
        except _Lost as lost:
            raise connection_lost(name, lost.cause) from lost.cause
        except TimeoutError:
            if channel is None:
                raise not_sent(name, f"not connected within its timeout of {timeout:g}s") from None
            raise await self._timed_out(name, timeout, req.routing_key) from None
        finally:
            self.pending.pop(cid, None)
        return result_from_reply(*reply)

    async def _ready(self, name: str) -> aio.Channel:
        """The reply channel; :class:`RpcNotSent` if there is no broker to send to,
        :class:`AccessRefused` if it refused us (a setting to fix, as for publishing)."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        try:
            return await self._ready_to_send(name)
        except AccessRefused:
            raise
        except BrokerUnavailable as exc:
            raise not_sent(name, exc) from exc

    async def _publish(self, channel: aio.Channel, name: str, req: Request) -> None:
        try:
            await aio.send(
                channel, req.body, req.routing_key, aiormq_properties(req), mandatory=True
            )
        except (aio.AMQPError, ConnectionError, OSError) as exc:
            raise connection_lost(name, exc) from exc

    async def _ready_to_send(self, name: str) -> aio.Channel:
        """The reply channel. Nothing is sent yet, so a connection lost meanwhile (aio-pika
        reconnects it) is waited out within the call's timeout and ``RECONNECT_TIMEOUT``,
        whichever ends first, as the sync client does; then :class:`BrokerUnavailable`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.conn.settings.reconnect_timeout
        delays = connections.backoff_delays(base=0.05, cap=0.5)
        while True:
            try:
                if not self.conn.ready:  # aio-pika would wait for its reconnect for ever
                    await self.conn.wait_ready(deadline)
                return await self._ready_channel()
            except BrokerUnavailable:
                raise
            except (aio.AMQPError, ConnectionError, OSError, RuntimeError) as exc:
                # RuntimeError: aiormq's "<Connection ...> closed" while a channel opens.
                if loop.time() >= deadline:
                    raise connections.unavailable(self.conn.settings, exc) from exc
                logger.debug("Not connected for a call to %s (%r); waiting", name, exc)
                await asyncio.sleep(next(delays))

    async def _timed_out(self, name: str, timeout: float, queue: str) -> RpcError:
        """The error of a call that got no reply in time: asks whether any server consumes
        ``queue`` (at most :data:`CONSUMER_CHECK_LIMIT` seconds; not on a blocked connection,
        where the broker reads nothing). A queue deleted after it took the request is
        :class:`NoRoute`."""
        if self._blocked():
            return timed_out(name, timeout, None, blocked=True)
        try:
            async with asyncio.timeout(CONSUMER_CHECK_LIMIT):
                consumers: int | None = await self._declare_passive(queue)
        except aio.ChannelNotFound:
            return no_route(name)
        except (TimeoutError, aio.AMQPError, ConnectionError, OSError):
            consumers = None
        return timed_out(name, timeout, consumers)

    def _blocked(self) -> bool:
        """Whether RabbitMQ blocks the connection for a resource alarm."""
        return self.conn.blocked

    async def _declare_passive(self, queue: str) -> int:
        """The consumer count of ``queue``; raises ``ChannelNotFoundEntity`` if it is missing."""
        connection = await self.conn.get()
        transport = connection.transport
        if transport is None:
            raise ConnectionError("not connected")
        before = asyncio.all_tasks()
        # A channel of its own: the broker closes it when the queue is missing.
        channel = await transport.connection.channel(publisher_confirms=False)
        try:
            declared = await channel.queue_declare(queue, passive=True)
        except aio.ChannelClosed:
            await _settled(before)
            raise
        finally:
            await _close_quietly(channel)
        return int(declared.consumer_count or 0)

    async def _ready_channel(self) -> aio.Channel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._open_channel()
            return self._channel

    async def _open_channel(self) -> aio.Channel:
        if self._robust is not None:
            # Our raw consumer is not restored by aio-pika: start afresh.
            robust, self._robust = self._robust, None
            await _close_quietly(robust)
        connection = await self.conn.get()
        self._robust = await connection.channel(publisher_confirms=not settings.FAST_PATHS)
        channel = cast(aio.Channel, await self._robust.get_underlay_channel())
        await channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)
        aio.on_returns(channel, self._on_returned)
        channel.closing.add_done_callback(self._on_closed)
        return channel

    async def _on_reply(self, message: aio.Incoming) -> None:
        reply = aio.delivery_of(message)
        future = self.pending.get(reply.correlation_id or "")
        if future is None or future.done():
            logger.debug("Dropping RPC reply with unknown or late id %s", reply.correlation_id)
            return
        future.set_result((reply.body, reply.content_type))

    def _on_returned(self, request: Delivery) -> None:
        """The broker returned a request: no queue took it."""
        future = self.pending.get(request.correlation_id or "")
        if future is not None and not future.done():
            future.set_exception(_Returned())

    def _on_closed(self, closing: asyncio.Future[Any]) -> None:
        cause = None if closing.cancelled() else closing.exception()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(_Lost(cause))


class _Returned(Exception):
    """A request the broker returned (:meth:`AsyncRpcClient.call` raises :class:`NoRoute`)."""


class _Lost(Exception):
    """The reply channel closed under a call (:meth:`AsyncRpcClient.call` raises
    ``connection_lost`` naming its procedure, which only the call knows)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(cause)
        self.cause = cause


async def _settled(before: set[asyncio.Task[Any]]) -> None:
    """Let the tasks started since ``before`` finish (at most :data:`SETTLE` seconds).

    A 404 reaches the caller while aiormq still closes the channel in tasks of
    its own (rejecting the declare's inner task, gathering it). A loop that ends
    right then (``asyncio.run(acall(...))`` raising :class:`NoRoute`) cancels
    them, and one ends with the ``ChannelNotFoundEntity``, which asyncio logs as
    "unhandled exception during asyncio.run() shutdown".
    """
    started = asyncio.all_tasks() - before - {asyncio.current_task()}
    if started:
        await asyncio.wait(started, timeout=SETTLE)


async def _close_quietly(channel: Any) -> None:
    try:
        await channel.close()
    except Exception:  # noqa: BLE001 - the channel is already broken
        logger.debug("Error closing a broken RPC channel", exc_info=True)
