"""The RPC clients behind :func:`rabbitbus.rpc.call` (pika) and :func:`~rabbitbus.rpc.acall`.

Both use direct reply-to (https://www.rabbitmq.com/docs/direct-reply-to): no
reply queue to declare, replies go straight to the consuming channel. A
missing server queue fails the call at once with :class:`NoRoute` (the sync
request is ``mandatory`` and comes back as a ``basic.return``; the async
client checks the queue, see :class:`AsyncRpcClient`). Every request carries
``expiration`` = timeout, so a request expires in its queue when its caller
gives up, and its deadline (see :mod:`rabbitbus.rpc`), so a server that took
it meanwhile does not start it either.
"""

from __future__ import annotations

import asyncio
import logging
import select
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiormq
import aiormq.exceptions
import pika
import pika.exceptions
from pamqp.commands import Basic
from pika.adapters.blocking_connection import BlockingChannel

from rabbitbus import connections, frames, messages, serializers
from rabbitbus.exceptions import (
    BrokerConnectionError,
    BrokerUnavailable,
    NoRoute,
    NoServer,
    RpcError,
    RpcNotSent,
    RpcTimeout,
)
from rabbitbus.observability import traces
from rabbitbus.rpc import (
    DIRECT_REPLY_TO,
    REQUEST_TYPE,
    deadline_after,
    queue_name,
    result_from_reply,
)

logger = logging.getLogger("rabbitbus.rpc_client")

#: Most calls one async client keeps in flight; more raise :class:`RpcError`.
MAX_PENDING = 10_000

#: A connection used this recently (seconds) is trusted without an idle-death probe.
RECENTLY_USED = 1.0

#: Longest a sync client reads replies past pika (seconds) before letting pika
#: run its timers (heartbeats) again.
PIKA_TIMERS_EVERY = 1.0

#: Longest the "does any server consume the queue?" check after a timeout may take
#: (seconds): a call returns within its timeout plus this, whatever the broker's state.
CONSUMER_CHECK_LIMIT = 1.0

#: Longest a failed queue check waits for aiormq to finish closing its channel (seconds).
SETTLE = 1.0

Reply = tuple[bytes, str | None]


class RpcInterceptor(Protocol):
    """Answers every call in place of the broker: a reply ``(body, content_type)``, or
    raises what the client would (:class:`NoRoute`, :class:`RpcTimeout`...)."""

    def call(self, name: str, req: Request, timeout: float) -> Reply: ...

    async def acall(self, name: str, req: Request, timeout: float) -> Reply: ...


#: When set (by :mod:`rabbitbus.testing`), :func:`rabbitbus.rpc.call` and
#: :func:`~rabbitbus.rpc.acall` go to it instead of a broker.
interceptor: RpcInterceptor | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One call on the wire: transient, expiring with the caller's patience.

    Only what a server needs is sent (no ``message_id``, ``timestamp`` or
    ``app_id`` as published messages carry): every property costs encoding on
    both sides of every call.
    """

    routing_key: str
    body: bytes
    content_type: str
    correlation_id: str
    expiration: str
    #: Epoch milliseconds after which no server starts it (``frames.DEADLINE_HEADER``).
    deadline: int
    #: The caller's trace context (``traceparent``...), when tracing (rabbitbus.observability).
    trace: dict[str, str] | None = None


def request(name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Request:
    """The request for ``name``; raises ``ValueError`` for a non-positive timeout,
    :class:`SerializationError` or :class:`MessageTooLarge` for bad arguments."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    serializer = serializers.default()
    body = messages.checked_size(serializer.dumps({"args": list(args), "kwargs": kwargs}))
    return Request(
        routing_key=queue_name(name),
        body=body,
        content_type=serializer.content_type,
        correlation_id=uuid.uuid4().hex,
        expiration=str(int(timeout * 1000)),
        deadline=deadline_after(timeout),
        trace=traces.context_headers() if traces.on else None,
    )


def aiormq_properties(req: Request) -> Basic.Properties:
    return Basic.Properties(
        content_type=req.content_type,
        delivery_mode=1,
        message_type=REQUEST_TYPE,
        expiration=req.expiration,
        correlation_id=req.correlation_id,
        reply_to=DIRECT_REPLY_TO,
        headers={frames.DEADLINE_HEADER: req.deadline, **(req.trace or {})},
    )


def no_route(name: str) -> NoRoute:
    return NoRoute(f"No queue serves RPC procedure {name!r} ({queue_name(name)} does not exist).")


def timed_out(
    name: str, timeout: float, consumers: int | None, blocked: bool = False
) -> RpcTimeout:
    """:class:`NoServer` when the queue is known to have no consumer, else :class:`RpcTimeout`
    (saying so when the broker ``blocked`` the connection for a resource alarm)."""
    message = f"No reply from RPC procedure {name!r} within {timeout:g}s"
    if blocked:
        return RpcTimeout(f"{message}: RabbitMQ blocks this connection (memory or disk alarm).")
    if consumers == 0:
        return NoServer(f"{message}: no server consumes {queue_name(name)}.")
    return RpcTimeout(f"{message}.")


def not_sent(name: str, why: BaseException | str) -> RpcNotSent:
    reason = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    return RpcNotSent(
        f"The call to {name!r} was not sent ({reason}); it did not run and may be retried."
    )


def connection_lost(name: str, exc: BaseException | None = None) -> BrokerConnectionError:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return BrokerConnectionError(
        f"Connection lost during the call to {name!r}{why}; it may or may not have run."
    )


# -- sync (pika) -----------------------------------------------------------


class SyncRpcClient:
    """One thread's calls: a channel consuming direct reply-to on its pika connection."""

    def __init__(self, conn: connections.SyncConnection) -> None:
        self.conn = conn
        self.channel: Any = None
        self._waiting: str | None = None
        self._reply: Reply | None = None
        self._returned = False
        self._reader: ReplyReader | None = None

    def call(self, name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Any:
        req = request(name, args, kwargs, timeout)
        deadline = time.monotonic() + timeout
        connection, channel = self._ready(name, deadline)
        self._waiting, self._reply, self._returned = req.correlation_id, None, False
        try:
            self._roundtrip(connection, channel, req, deadline)
        except (pika.exceptions.ChannelClosed, *connections.PIKA_CONNECTION_ERRORS) as exc:
            self._forget()
            raise connection_lost(name, exc) from exc
        finally:
            self._waiting = None
        if self._returned:
            raise no_route(name)
        if self._reply is None:
            blocked = self.conn.blocked
            consumers = None if blocked else self._consumers(req.routing_key)
            raise timed_out(name, timeout, consumers, blocked)
        return result_from_reply(*self._reply)

    def _ready(self, name: str, deadline: float) -> tuple[pika.BlockingConnection, Any]:
        """The connection and reply channel, (re)connecting until ``deadline``; nothing is
        sent yet, so failing raises :class:`RpcNotSent`."""
        delays = connections.backoff_delays(base=0.05, cap=0.5)
        while True:
            try:
                return self._channel(deadline)
            except BrokerUnavailable as exc:
                raise not_sent(name, exc) from exc
            except (pika.exceptions.ChannelClosed, *connections.PIKA_CONNECTION_ERRORS) as exc:
                self._forget()
                delay = next(delays)
                if time.monotonic() + delay >= deadline:
                    raise not_sent(name, exc) from exc
                time.sleep(delay)

    def _forget(self) -> None:
        self.conn.discard()
        self.channel = None

    def _consumers(self, queue: str) -> int | None:
        """How many servers consume ``queue``, asked after a timeout on the connection as it
        is (never reconnecting), for at most :data:`CONSUMER_CHECK_LIMIT` seconds; ``None``
        if that cannot be told in time (a half-open connection, say) or at all."""
        connection = self.conn.connection
        if connection is None or not connection.is_open:
            return None
        try:
            return consumer_count(connection, queue, CONSUMER_CHECK_LIMIT)
        except TimeoutError:
            self._forget()  # it answers nothing in time: the next call starts afresh
            return None
        except (pika.exceptions.AMQPError, *connections.PIKA_CONNECTION_ERRORS):
            return None

    def _roundtrip(
        self, connection: pika.BlockingConnection, channel: Any, req: Request, deadline: float
    ) -> None:
        publish_in_one_write(channel._impl, req)
        reader = self._reader
        if reader is None or reader.channel is not channel:
            reader = self._reader = ReplyReader.attach(channel)
        while self._reply is None and not self._returned:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if reader is not None and reader.usable():
                delivery = reader.read(remaining)
                if delivery is not None:
                    self._take_reply(delivery.correlation_id, delivery.body, delivery.content_type)
            else:
                connection.process_data_events(time_limit=remaining)
                if reader is not None:
                    reader.pika_ran = time.monotonic()

    def _channel(self, deadline: float) -> tuple[pika.BlockingConnection, Any]:
        channel, now = self.channel, time.monotonic()
        if (
            channel is not None
            and channel.is_open
            and channel.connection is self.conn.connection
            and now - self.conn.last_used < RECENTLY_USED
        ):
            # Skip the idle-death probe (a poll per call) while calls come back to back.
            self.conn.last_used = now
            return channel.connection, channel
        connection = self.conn.get(deadline)
        if channel is None or not channel.is_open or channel.connection is not connection:
            channel = connection.channel()
            channel.add_on_return_callback(self._on_return)
            # Direct reply-to needs a no-ack consumer before the first publish.
            channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
            self.channel = channel
        return connection, channel

    def _on_reply(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        self._take_reply(properties.correlation_id, body, properties.content_type)

    def _take_reply(
        self, correlation_id: str | None, body: bytes, content_type: str | None
    ) -> None:
        if self._waiting is None or correlation_id != self._waiting:
            logger.debug("Dropping RPC reply with unknown or late id %s", correlation_id)
            return
        self._reply = (body, content_type)
        self._waiting = None  # a duplicate of this reply is now late

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        if properties.correlation_id == self._waiting:
            self._returned = True


def consumer_count(connection: pika.BlockingConnection, queue: str, limit: float) -> int | None:
    """The consumer count of ``queue`` by a passive declare on a channel of its own (a 404
    closes it: ``None``). Raises ``TimeoutError`` when no answer comes within ``limit``
    seconds. pika's blocking ``channel()`` waits without limit, so this opens it as that
    does (pika 1.x internals: the ``_impl`` channel with its ``BlockingChannel`` cookie)
    but runs the connection's I/O for at most ``limit``."""
    answer: list[int] = []

    def opened(impl: Any) -> None:
        impl.queue_declare(
            queue, passive=True, callback=lambda ok: answer.append(ok.method.consumer_count)
        )

    impl = connection._impl.channel(on_open_callback=opened)
    channel = BlockingChannel(impl, connection)
    impl._set_cookie(channel)
    give_up = time.monotonic() + limit
    while not answer and not channel.is_closed:
        if time.monotonic() >= give_up:
            raise TimeoutError(f"no answer to a passive declare within {limit:g}s")
        # Short slices: a callback on an _impl channel does not end pika's wait.
        connection.process_data_events(time_limit=0.005)
    if channel.is_open:
        channel.close()
    return int(answer[0]) if answer else None


class ReplyReader:
    """Reads a reply off the socket of a pika ``BlockingConnection``, past pika.

    pika turns a reply into a callback through its ioloop, frame objects,
    spec classes and event queues: ~100 us of the client's CPU per call here
    (docs/benchmarks.md). When a read returns exactly one delivery on the
    reply channel (what a reply nearly always is), :func:`frames.parse_delivery`
    takes it in a few us. Anything else, a partial frame, a heartbeat, a
    ``basic.return``, a close, is handed to pika as its own transport would
    (``_on_data_available``), and pika dispatches it. pika's byte count moves
    either way, so its heartbeat checker sees the traffic, and pika's ioloop runs
    at least every :data:`PIKA_TIMERS_EVERY` seconds to send heartbeats. Not
    used on TLS (an ``SSLSocket`` may hold decrypted bytes of its own) or when
    pika holds unprocessed input. Uses pika 1.x internals, as
    :func:`write_now` does.
    """

    def __init__(self, channel: Any, sock: Any) -> None:
        self.channel = channel
        self.connection = channel.connection
        self.impl: Any = self.connection._impl
        self.sock = sock
        self.channel_number = channel.channel_number
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)
        self.pika_ran = time.monotonic()

    @classmethod
    def attach(cls, channel: Any) -> ReplyReader | None:
        """A reader for the replies to ``channel`` (a ``BlockingChannel``), or ``None``
        when its connection cannot have one (TLS)."""
        sock = getattr(channel.connection._impl._transport, "_sock", None)
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return None
        return cls(channel, sock)

    def usable(self) -> bool:
        """Whether the next read may bypass pika: nothing of pika's is pending or due."""
        connection: Any = self.connection
        return not (
            self.impl._frame_buffer
            or connection._channels_pending_dispatch
            or connection._ready_events
            or time.monotonic() - self.pika_ran > PIKA_TIMERS_EVERY
            or self.impl._transport is None
        )

    def read(self, timeout: float) -> frames.Delivery | None:
        """The delivery that arrives within ``timeout`` seconds, if one arrives alone.

        Raises ``pika.exceptions.StreamLostError`` when the socket fails or closes.
        """
        if not self.poller.poll(max(1, int(timeout * 1000))):
            return None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise pika.exceptions.StreamLostError(f"Stream connection lost: {exc!r}") from exc
        if not data:
            raise pika.exceptions.StreamLostError("Stream connection lost: EOF from the broker")
        delivery = frames.parse_delivery(data, self.channel_number)
        if delivery is None:
            self.impl._on_data_available(data)
            self.connection.process_data_events(0)  # dispatch what pika made of it
            self.pika_ran = time.monotonic()
            return None
        self.impl.bytes_received += len(data)
        self.impl.frames_received += delivery.frames
        return delivery


def publish_in_one_write(channel: Any, req: Request) -> None:
    """Send ``req`` as a mandatory publish, all its frames in one socket write.

    pika sends a message's method, header and body frames as three
    ``send()`` calls, and each one wakes the broker: one write took 25-80 us
    off a call's p50 here (A/B in one run, see docs/benchmarks.md). Frames
    are marshalled by :mod:`rabbitbus.frames`. Uses pika 1.x internals, as
    :mod:`rabbitbus.confirms` does.
    """
    channel._raise_if_not_open()
    connection = channel.connection
    data = frames.publish(
        channel.channel_number,
        req.routing_key,
        req.body,
        body_frame_max=connection._body_max_length,
        content_type=req.content_type,
        correlation_id=req.correlation_id,
        message_type=REQUEST_TYPE,
        reply_to=DIRECT_REPLY_TO,
        expiration=req.expiration,
        deadline=req.deadline,
        trace=req.trace,
        mandatory=True,
    )
    write_now(connection, data)


def write_now(connection: Any, data: bytes) -> None:
    """Write ``data`` on pika ``connection`` (the adapter) at once when it can.

    pika buffers every write until its next poll finds the socket writable:
    two ``epoll_ctl`` calls and a poll per call, ~30 us of a call's p50 here.
    On a plain TCP socket with nothing queued before ``data``, it is sent
    right away; whatever is left (a partial send, a full buffer, any socket
    error) goes through pika's writer, which then deals with the socket.
    """
    transport = connection._transport
    sock = getattr(transport, "_sock", None)
    if sock is None or isinstance(sock, ssl.SSLSocket) or transport.get_write_buffer_size():
        connection._output_marshaled_frames([data])
        return
    try:
        sent = sock.send(data)
    except OSError:
        sent = 0  # pika's writer meets the same error and closes the connection
    connection.bytes_sent += sent
    if sent < len(data):
        connection._output_marshaled_frames([data[sent:]])


def sync_client(alias: str = "default") -> SyncRpcClient:
    """This thread's RPC client for connection ``alias``."""
    conn = connections.get_sync(alias)
    if conn.rpc_client is None:
        conn.rpc_client = SyncRpcClient(conn)
    return conn.rpc_client


# -- async (aio-pika / aiormq) ------------------------------------------------


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


def async_client(alias: str = "default") -> AsyncRpcClient:
    """The running loop's RPC client for connection ``alias``."""
    conn = connections.get_async(alias)
    if conn.rpc_client is None:
        conn.rpc_client = AsyncRpcClient(conn)
    return conn.rpc_client
