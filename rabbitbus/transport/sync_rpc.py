"""The sync RPC client's wire (pika): requests published, replies read, and a consumer
count that cannot hang.

The fast paths (one-write requests, replies read off the socket past pika) use pika 1.x
internals (tests/test_driver_internals.py lists them) and are on while
``RABBITBUS["FAST_PATHS"]`` is (the default); off, pika's public API does the same.
"""

from __future__ import annotations

import select
import ssl
import time
from typing import Any, Protocol, TypeAlias

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from rabbitbus.conf import settings
from rabbitbus.messages import Delivery
from rabbitbus.transport import frames
from rabbitbus.transport.connections import PIKA_CONNECTION_ERRORS

#: Longest a sync client reads replies past pika (seconds) before letting pika
#: run its timers (heartbeats) again.
PIKA_TIMERS_EVERY = 1.0

Connection: TypeAlias = pika.BlockingConnection
#: A call's channel or connection was lost: open them again (the call is not retried).
LOST: tuple[type[BaseException], ...] = (pika.exceptions.ChannelClosed, *PIKA_CONNECTION_ERRORS)
#: Anything a question to the broker can fail with.
FAILED: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, *PIKA_CONNECTION_ERRORS)


class OutgoingRequest(Protocol):
    """What :func:`send_request` reads of a request (``rabbitbus.rpc.requests.Request``)."""

    @property
    def routing_key(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def deadline(self) -> int: ...
    @property
    def trace(self) -> dict[str, str] | None: ...


def consumer_count(connection: pika.BlockingConnection, queue: str, limit: float) -> int | None:
    """The consumer count of ``queue`` by a passive declare on a channel of its own;
    ``None`` if the broker closes that channel for another reason than a missing queue.
    Raises :class:`QueueMissing` (a 404) or ``TimeoutError`` when no answer comes within
    ``limit`` seconds. pika's blocking ``channel()`` waits without limit, so this opens it as that
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
    refusals: list[BaseException] = []
    impl.add_on_close_callback(lambda _channel, reason: refusals.append(reason))
    give_up = time.monotonic() + limit
    while not answer and not channel.is_closed:
        if time.monotonic() >= give_up:
            raise TimeoutError(f"no answer to a passive declare within {limit:g}s")
        # Short slices: a callback on an _impl channel does not end pika's wait.
        connection.process_data_events(time_limit=0.005)
    if channel.is_open:
        channel.close()
    if not answer and getattr(refusals[0] if refusals else None, "reply_code", None) == 404:
        raise QueueMissing(queue)
    return int(answer[0]) if answer else None


class QueueMissing(LookupError):
    """The queue a passive declare asked about does not exist."""


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
        when its connection cannot have one (TLS) or ``FAST_PATHS`` is off."""
        if not settings.FAST_PATHS:
            return None
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

    def input_waiting(self) -> bool:
        """Whether bytes wait on the socket (one ``poll(0)``, a few microseconds)."""
        return bool(self.poller.poll(0))

    def read(self, timeout: float) -> Delivery | None:
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


def send_request(channel: Any, req: OutgoingRequest, properties: dict[str, Any]) -> None:
    """Publish ``req`` (``mandatory``, on the default exchange) on a ``BlockingChannel``.

    ``properties`` are the request's, with pika's names. On the fast path all its frames go
    in one socket write: pika sends a message's method, header and body frames as three
    ``send()`` calls, and each one wakes the broker; one write took 25-80 us off a call's
    p50 here (A/B in one run, see docs/benchmarks.md). Frames are marshalled by
    :mod:`rabbitbus.transport.frames`. With ``FAST_PATHS`` off, pika's ``basic_publish``.
    """
    if not settings.FAST_PATHS:
        channel.basic_publish(
            "",
            req.routing_key,
            req.body,
            properties=pika.BasicProperties(**properties),
            mandatory=True,
        )
        return
    impl = channel._impl
    impl._raise_if_not_open()
    connection = impl.connection
    data = frames.publish(
        impl.channel_number,
        req.routing_key,
        req.body,
        body_frame_max=connection._body_max_length,
        content_type=properties["content_type"],
        correlation_id=properties["correlation_id"],
        message_type=properties["type"],
        reply_to=properties["reply_to"],
        expiration=properties["expiration"],
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
