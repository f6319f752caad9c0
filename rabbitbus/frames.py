"""AMQP 0-9-1 frames of the RPC hot path, marshalled by hand (no I/O).

An RPC request (client) and a reply with its ack (server) are a handful of
frames with a fixed set of properties. pika and pamqp marshal any frame from
its spec, which costs ~10-30 us per message on a small machine; these
functions do only what a request or a reply needs, in ~4 us, and the tests
check them byte for byte against pamqp and pika
(https://www.rabbitmq.com/resources/specs/amqp0-9-1.pdf, section 4.2).
"""

from __future__ import annotations

import struct

METHOD, HEADER, BODY = 1, 2, 3
FRAME_END = b"\xce"
#: Bytes of a frame around its payload: type, channel, size, then the frame end.
FRAME_OVERHEAD = 8
BASIC = 60
PUBLISH, ACK = 40, 80

# Property flags, in the spec's order (bit 15 is the first property).
CONTENT_TYPE = 1 << 15
DELIVERY_MODE = 1 << 12
CORRELATION_ID = 1 << 10
REPLY_TO = 1 << 9
EXPIRATION = 1 << 8
TYPE = 1 << 5

_FRAME = struct.Struct(">BHI")
_HEADER = struct.Struct(">HHQH")
_ACK = struct.Struct(">HHQB")
_PUBLISH = struct.Struct(">HHH")


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME.pack(kind, channel, len(payload)) + payload + FRAME_END


def _short(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}...")
    return bytes((len(data),)) + data


def publish(
    channel: int,
    routing_key: str,
    body: bytes,
    *,
    body_frame_max: int,
    content_type: str,
    correlation_id: str,
    message_type: str,
    reply_to: str | None = None,
    expiration: str | None = None,
    mandatory: bool = False,
) -> bytes:
    """A transient ``basic.publish`` to the default exchange, its header and body frames.

    The body is split into frames of at most ``body_frame_max`` bytes (the
    connection's negotiated ``frame_max`` less :data:`FRAME_OVERHEAD`).
    Raises ``ValueError`` for a string longer than AMQP's 255-byte short strings.
    """
    method = _PUBLISH.pack(BASIC, PUBLISH, 0) + b"\x00" + _short(routing_key)
    method += b"\x01" if mandatory else b"\x00"
    flags = CONTENT_TYPE | DELIVERY_MODE | CORRELATION_ID | TYPE
    properties = _short(content_type) + b"\x01" + _short(correlation_id)
    if reply_to is not None:
        flags |= REPLY_TO
        properties += _short(reply_to)
    if expiration is not None:
        flags |= EXPIRATION
        properties += _short(expiration)
    properties += _short(message_type)
    header = _HEADER.pack(BASIC, 0, len(body), flags) + properties
    parts = [_frame(METHOD, channel, method), _frame(HEADER, channel, header)]
    size = body_frame_max
    parts += [_frame(BODY, channel, body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts)


def ack(channel: int, delivery_tag: int) -> bytes:
    """A ``basic.ack`` of one delivery."""
    return _frame(METHOD, channel, _ACK.pack(BASIC, ACK, delivery_tag, 0))
