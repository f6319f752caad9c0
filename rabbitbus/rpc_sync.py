"""The sync RPC client behind :func:`rabbitbus.rpc.call`: pika, direct reply-to.

The request is ``mandatory``: a missing server queue comes back as a
``basic.return`` and fails the call at once with :class:`NoRoute`. Its hot paths
(one-write requests, replies read off the socket) use pika 1.x internals
(tests/test_driver_internals.py lists them).
"""

from __future__ import annotations

import logging
import select
import ssl
import time
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from rabbitbus import connections, frames
from rabbitbus.exceptions import BrokerUnavailable
from rabbitbus.rpc import DIRECT_REPLY_TO, REQUEST_TYPE, result_from_reply
from rabbitbus.rpc_requests import (
    CONSUMER_CHECK_LIMIT,
    Reply,
    Request,
    connection_lost,
    no_route,
    not_sent,
    request,
    timed_out,
)

logger = logging.getLogger("rabbitbus.rpc_client")  # one logger name for both clients

#: A connection used this recently (seconds) is trusted without an idle-death probe.
RECENTLY_USED = 1.0
#: Longest a sync client reads replies past pika (seconds) before letting pika
#: run its timers (heartbeats) again.
PIKA_TIMERS_EVERY = 1.0


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
