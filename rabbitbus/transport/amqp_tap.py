"""Deliveries taken off an aiormq connection's socket before aiormq reads them.

aiormq turns every incoming frame into pamqp objects, passes them through a
reader task, a per-channel queue and a channel task, and runs each delivery
as a task of its own: about a third of an RPC server's CPU per request here
(docs/benchmarks.md), and of a consumer worker's event loop. A
:class:`DeliveryTap` sits in the socket's protocol, below aiormq's stream
reader. It walks the incoming bytes frame by frame; a ``basic.deliver`` on a
channel a service has :meth:`~DeliveryTap.take`\\ n (an RPC server's, a
consumer's), with its header and body frames, is read by
:func:`frames.read_delivery` and handed to that service at once. Every other
byte goes on to aiormq unchanged and in order, whole frames at a time, so
aiormq still does everything else: the handshake, heartbeats, closes,
cancels, other channels, and deliveries the tap does not read (a body over
:data:`MAX_HELD` bytes, a table pamqp cannot decode).

aiormq counts a connection as stuck when no frame reaches it for three
heartbeat intervals, and a broker busy sending deliveries sends no heartbeat.
So when the tap has kept everything from aiormq for :data:`KEEPALIVE`
seconds, it passes aiormq a heartbeat frame of its own: the connection is
alive, and that is what the frame says.

The tap is installed through aiormq's public ``transport_factory`` argument
(:class:`TapTransportFactory`), for plain and TLS connections alike.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

import aiormq.abc
from aiormq.connection import TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from rabbitbus.messages import Delivery
from rabbitbus.transport import frames, opening

logger = logging.getLogger("rabbitbus.transport.amqp_tap")

#: A heartbeat frame (type 8, channel 0, no payload).
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
#: Seconds the tap may keep every frame from aiormq before it passes it a heartbeat.
KEEPALIVE = 1.0
#: Most bytes of a delivery the tap takes (and holds back while they arrive); a bigger
#: one goes to aiormq, which reads its body frames as they come.
MAX_HELD = 256 * 1024
_FRAME = struct.Struct(">BHI")

Taker = Callable[[Delivery], None]


class DeliveryTap:
    """Splits one connection's incoming bytes into taken deliveries and aiormq's share."""

    def __init__(self) -> None:
        #: channel number -> (the aiormq channel, what takes its deliveries, in order?)
        self.takers: dict[int, tuple[aiormq.abc.AbstractChannel, Taker, bool]] = {}
        #: Set once connected: replies may be written on it directly.
        self.writer: asyncio.StreamWriter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.broken = False
        self._held = b""  # the start of a frame (or a delivery) not complete yet
        self._passing = 0  # bytes of a frame already partly passed to aiormq
        self._passed_at = 0.0

    def take(self, channel: aiormq.abc.AbstractChannel, taker: Taker, *, ordered: bool) -> None:
        """Hand ``channel``'s deliveries to ``taker`` (in the loop, as they arrive)
        until the channel closes.

        A delivery the tap does not read goes to aiormq, whose consumer sees it a little
        later than the tap's would: ``ordered`` (a consumer's deliveries) then lets go of
        the channel for good, so that nothing taken after it overtakes it."""
        self.takers[channel.number] = (channel, taker, ordered)

    def split(self, data: bytes) -> bytes:
        """Take the deliveries in ``data``; return the bytes aiormq gets."""
        if self.broken:
            return data
        out = []
        if self._passing:
            if len(data) <= self._passing:
                self._passing -= len(data)
                return self._passed(data)
            out.append(data[: self._passing])
            data, self._passing = data[self._passing :], 0
        buffer = self._held + data if self._held else data
        self._held = b""
        position = start = 0
        size = len(buffer)
        while position < size:
            if size - position < 7:
                self._held = buffer[position:]
                break
            kind, number, length = _FRAME.unpack_from(buffer, position)
            taker = self._taker(number) if kind == frames.METHOD else None
            if taker is not None:
                try:
                    delivery = frames.read_delivery(buffer, position, number)
                except frames.Incomplete:
                    if size - position <= MAX_HELD:
                        self._held = buffer[position:]
                        break
                    delivery = None
                except (ValueError, struct.error):
                    logger.debug("Unreadable frame; passing the rest to aiormq", exc_info=True)
                    self.broken = True
                    out.append(buffer[start:])
                    return self._passed(b"".join(out))
                if delivery is not None and delivery.end - position <= MAX_HELD:
                    out.append(buffer[start:position])
                    position = start = delivery.end
                    taker(delivery)
                    continue
                if frames.is_delivery(buffer, position):
                    self._passed_on(number)
            end = position + frames.FRAME_OVERHEAD + length
            if end > size:
                self._passing = end - size
                position = size
                break
            position = end
        out.append(buffer[start:position])
        return self._passed(b"".join(out))

    def _passed_on(self, number: int) -> None:
        """A delivery on channel ``number`` goes to aiormq: an ordered channel's all do."""
        if self.takers[number][2]:
            del self.takers[number]
            logger.debug(
                "Channel %d: a delivery the tap does not read; aiormq reads the channel's "
                "deliveries from now on",
                number,
            )

    def _taker(self, number: int) -> Taker | None:
        entry = self.takers.get(number)
        if entry is None:
            return None
        channel, taker, _ = entry
        if channel.is_closed:
            del self.takers[number]  # its number may be reused by a channel we must not tap
            return None
        return taker

    def _passed(self, data: bytes) -> bytes:
        """``data`` on its way to aiormq, plus a heartbeat when it has gone without for long."""
        now = self.loop.time() if self.loop is not None else 0.0
        if data:
            self._passed_at = now
            return data
        if now - self._passed_at > KEEPALIVE and not self._passing:
            self._passed_at = now
            return HEARTBEAT
        return data


class _TappedProtocol(asyncio.StreamReaderProtocol):
    def __init__(
        self, reader: asyncio.StreamReader, tap: DeliveryTap, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(reader, loop=loop)
        self._tap = tap

    def data_received(self, data: bytes) -> None:
        data = self._tap.split(data)
        if data:
            super().data_received(data)


class TapTransportFactory(TransportFactory):
    """Opens an aiormq connection's socket with a :class:`DeliveryTap` in its protocol,
    as ``asyncio.open_connection`` would otherwise (pass it as aiormq's
    ``transport_factory``)."""

    def __init__(self) -> None:
        self.tap = DeliveryTap()

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider = kwargs.pop("ssl_context_provider", None)
        context = await provider.get_context() if url.scheme == "amqps" and provider else None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        try:
            transport, protocol = await loop.create_connection(
                lambda: _TappedProtocol(reader, self.tap, loop),
                str(url.host),
                url.port or 5672,
                ssl=context,
                **kwargs,
            )
        except OSError as exc:
            raise AMQPConnectionError(*exc.args) from exc
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self.tap.loop, self.tap.writer = loop, writer
        self.tap._passed_at = loop.time()
        return reader, writer


def of(connection: opening.Connection) -> DeliveryTap | None:
    """The tap of ``connection``, if it was opened with a :class:`TapTransportFactory`."""
    factory = connection.transport_factory
    return factory.tap if isinstance(factory, TapTransportFactory) else None
