"""The async RPC client behind :func:`rabbitbus.rpc.acall`: aiormq, direct reply-to,
a future per correlation id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import aiormq
import aiormq.exceptions

from rabbitbus import connections
from rabbitbus.exceptions import BrokerUnavailable, RpcError
from rabbitbus.rpc import DIRECT_REPLY_TO, result_from_reply
from rabbitbus.rpc_requests import (
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

logger = logging.getLogger("rabbitbus.rpc_client")  # one logger name for both clients

#: Most calls one async client keeps in flight; more raise :class:`RpcError`.
MAX_PENDING = 10_000
#: Longest a failed queue check waits for aiormq to finish closing its channel (seconds).
SETTLE = 1.0


class AsyncRpcClient:
    """One loop's calls: one direct reply-to consumer, a future per correlation id.

    Requests go out without publisher confirms (a confirm per call costs the
    client and the broker about a fifth of their CPU per call, see
    docs/benchmarks.md) and so without ``mandatory``, whose returns aiormq only
    reports on confirm channels. Instead, the first call to a procedure checks
    that its queue exists (a passive declare): no queue raises
    :class:`NoRoute` at once. A call that times out makes the next one check
    again, so a queue deleted later is reported as soon as one call has timed out.
    """

    def __init__(self, conn: connections.AsyncConnection) -> None:
        self.conn = conn
        self.pending: dict[str, asyncio.Future[Reply]] = {}
        #: Server queues seen to exist; calls to them skip the check.
        self.routed: set[str] = set()
        self._robust: Any = None
        self._channel: aiormq.Channel | None = None
        self._lock = asyncio.Lock()
        self._checking = asyncio.Lock()

    async def call(self, name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Any:
        req = request(name, args, kwargs, timeout)
        if len(self.pending) >= MAX_PENDING:
            raise RpcError(f"Over {MAX_PENDING} RPC calls in flight on this loop.")
        cid = req.correlation_id
        future = self.pending[cid] = asyncio.get_running_loop().create_future()
        channel = None
        try:
            async with asyncio.timeout(timeout):
                channel = await self._ready(name, req.routing_key)
                await self._publish(channel, name, req)
                reply = await future
        except TimeoutError:
            if channel is None:
                raise not_sent(name, f"not connected within its timeout of {timeout:g}s") from None
            self.routed.discard(req.routing_key)  # the queue may be gone: check again
            raise await self._timed_out(name, timeout, req.routing_key) from None
        finally:
            self.pending.pop(cid, None)
        return result_from_reply(*reply)

    async def _ready(self, name: str, queue: str) -> aiormq.Channel:
        """The reply channel, once ``queue`` is known to exist; :class:`RpcNotSent` if
        there is no broker to send to."""
        channel = self._channel
        if channel is not None and not channel.is_closed and queue in self.routed:
            return channel
        try:
            return await self._ready_to_send(name, queue)
        except BrokerUnavailable as exc:
            raise not_sent(name, exc) from exc

    async def _publish(self, channel: aiormq.Channel, name: str, req: Request) -> None:
        try:
            # wait=False: no drain future per request; the write is queued in order.
            await channel.basic_publish(
                req.body,
                routing_key=req.routing_key,
                properties=aiormq_properties(req),
                wait=False,
            )
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError) as exc:
            raise connection_lost(name, exc) from exc

    async def _ready_to_send(self, name: str, queue: str) -> aiormq.Channel:
        """The reply channel, once ``queue`` is known to exist. Nothing is sent yet, so a
        connection lost meanwhile (aio-pika reconnects it) is waited out within the call's
        timeout; :class:`BrokerUnavailable` (no broker within RECONNECT_TIMEOUT) is not."""
        delays = connections.backoff_delays(base=0.05, cap=0.5)
        while True:
            try:
                channel = await self._ready_channel()
                if queue not in self.routed:
                    await self._check_route(name, queue)
                return channel
            except BrokerUnavailable:
                raise
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError) as exc:
                # RuntimeError: aiormq's "<Connection ...> closed" while a channel opens.
                logger.debug("Not connected for a call to %s (%r); waiting", name, exc)
                await asyncio.sleep(next(delays))

    async def _check_route(self, name: str, queue: str) -> None:
        """Raise :class:`NoRoute` unless ``queue`` exists (one check at a time)."""
        async with self._checking:
            if queue in self.routed:
                return
            try:
                await self._declare_passive(queue)
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise no_route(name) from None
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError) as exc:
                raise connection_lost(name, exc) from exc
            self.routed.add(queue)

    async def _timed_out(self, name: str, timeout: float, queue: str) -> RpcError:
        """The error of a call that got no reply in time: asks whether any server consumes
        ``queue`` (at most :data:`CONSUMER_CHECK_LIMIT` seconds; not on a blocked connection,
        where the broker reads nothing). A queue deleted since it was last seen is
        :class:`NoRoute`, as ``call`` says (at once, there: its request comes back)."""
        if self._blocked():
            return timed_out(name, timeout, None, blocked=True)
        try:
            async with asyncio.timeout(CONSUMER_CHECK_LIMIT):
                consumers: int | None = await self._declare_passive(queue)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return no_route(name)
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, OSError):
            consumers = None
        return timed_out(name, timeout, consumers)

    def _blocked(self) -> bool:
        """Whether RabbitMQ blocks the connection for a resource alarm (aiormq keeps that in
        a private event, cleared on ``connection.blocked``)."""
        robust = self.conn.connection
        transport = robust.transport if robust is not None else None
        if transport is None:
            return False
        unblocked = getattr(transport.connection, "_Connection__connection_unblocked", None)
        return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()

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
        except aiormq.exceptions.ChannelClosed:
            await _settled(before)
            raise
        finally:
            await _close_quietly(channel)
        return int(declared.consumer_count or 0)

    async def _ready_channel(self) -> aiormq.Channel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._open_channel()
            return self._channel

    async def _open_channel(self) -> aiormq.Channel:
        if self._robust is not None:
            # Our raw consumer is not restored by aio-pika: start afresh.
            robust, self._robust = self._robust, None
            await _close_quietly(robust)
        connection = await self.conn.get()
        self.routed.clear()
        self._robust = await connection.channel(publisher_confirms=False)
        channel = cast(aiormq.Channel, await self._robust.get_underlay_channel())
        await channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)
        channel.closing.add_done_callback(self._on_closed)
        return channel

    async def _on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        properties = message.header.properties
        future = self.pending.get(properties.correlation_id or "")
        if future is None or future.done():
            logger.debug("Dropping RPC reply with unknown or late id %s", properties.correlation_id)
            return
        future.set_result((message.body, properties.content_type))

    def _on_closed(self, _closing: asyncio.Future[Any]) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(connection_lost("an RPC procedure"))


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
