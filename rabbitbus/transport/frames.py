"""AMQP 0-9-1 frames of the hot paths, marshalled and parsed by hand (no I/O).

An RPC request (client) and a reply with its ack (server) are a handful of
frames with a fixed set of properties. pika and pamqp marshal any frame from
its spec, which costs ~10-30 us per message on a small machine; these
functions do only what a request or a reply needs, in ~4 us, and the tests
check them byte for byte against pamqp and pika
(https://www.rabbitmq.com/resources/specs/amqp0-9-1.pdf, section 4.2).

:func:`read_delivery` reads a ``basic.deliver`` with its header and body frames,
every property included, for the RPC server and consumer workers (through
:mod:`~rabbitbus.transport.amqp_tap`) and the sync RPC client's replies
(:func:`parse_delivery`); it gives up (``None``) on anything else, which then goes
to the driver. A request's one header, its deadline (:data:`DEADLINE_HEADER`, see
:mod:`rabbitbus.rpc`), is read by hand; any other ``headers`` table by pamqp's
decoder, as aiormq reads it.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import decode

from rabbitbus.conf.schema import is_number
from rabbitbus.messages import Delivery

METHOD, HEADER, BODY = 1, 2, 3
FRAME_END = b"\xce"
#: Bytes of a frame around its payload: type, channel, size, then the frame end.
FRAME_OVERHEAD = 8
BASIC = 60
PUBLISH, DELIVER, ACK = 40, 60, 80

# Property flags, in the spec's order (bit 15 is the first property).
CONTENT_TYPE = 1 << 15
CONTENT_ENCODING = 1 << 14
HEADERS = 1 << 13
DELIVERY_MODE = 1 << 12
PRIORITY = 1 << 11
CORRELATION_ID = 1 << 10
REPLY_TO = 1 << 9
EXPIRATION = 1 << 8
MESSAGE_ID = 1 << 7
TIMESTAMP = 1 << 6
TYPE = 1 << 5
USER_ID = 1 << 4
APP_ID = 1 << 3
CLUSTER_ID = 1 << 2
#: Bit 0: another flags word follows (never for basic's 14 properties).
MORE_FLAGS = 1
#: Each property's bit and its size on the wire: 0 for a short string, _TABLE for a
#: table, else octets.
_TABLE = -1
_PROPERTIES = (
    (CONTENT_TYPE, 0), (CONTENT_ENCODING, 0), (HEADERS, _TABLE), (DELIVERY_MODE, 1), (PRIORITY, 1),
    (CORRELATION_ID, 0), (REPLY_TO, 0), (EXPIRATION, 0), (MESSAGE_ID, 0),
    (TIMESTAMP, 8), (TYPE, 0), (USER_ID, 0), (APP_ID, 0), (CLUSTER_ID, 0),
)  # fmt: skip

#: The header naming a request's deadline: whole milliseconds since the epoch (int64).
DEADLINE_HEADER = "x-rabbitbus-deadline"

_FRAME = struct.Struct(">BHI")
_HEADER = struct.Struct(">HHQH")
_ACK = struct.Struct(">HHQB")
_PUBLISH = struct.Struct(">HHH")
_METHOD_ID = struct.Struct(">HH")
_TAG = struct.Struct(">QB")
_INT64 = struct.Struct(">q")
_UINT32 = struct.Struct(">I")
_UINT64 = struct.Struct(">Q")
#: The one table entry a request carries, up to its value: name, then type ``l`` (int64).
_DEADLINE_ENTRY = bytes((len(DEADLINE_HEADER),)) + DEADLINE_HEADER.encode() + b"l"
#: That table's size prefix: the entry and its 8-byte value.
_DEADLINE_TABLE = struct.pack(">I", len(_DEADLINE_ENTRY) + _INT64.size) + _DEADLINE_ENTRY


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
    deadline: int | None = None,
    trace: dict[str, str] | None = None,
    mandatory: bool = False,
) -> bytes:
    """A transient ``basic.publish`` to the default exchange, its header and body frames.

    ``deadline`` (epoch milliseconds) goes in a ``headers`` table of one entry,
    :data:`DEADLINE_HEADER`, encoded as pamqp and pika encode it. The body is
    split into frames of at most ``body_frame_max`` bytes (the connection's
    negotiated ``frame_max`` less :data:`FRAME_OVERHEAD`).
    ``trace`` (``traceparent`` and the like) adds long-string entries after it.
    Raises ``ValueError`` for a string longer than AMQP's 255-byte short strings.
    """
    method = _PUBLISH.pack(BASIC, PUBLISH, 0) + b"\x00" + _short(routing_key)
    method += b"\x01" if mandatory else b"\x00"
    flags = CONTENT_TYPE | DELIVERY_MODE | CORRELATION_ID | TYPE
    properties = _short(content_type)
    if trace:
        flags |= HEADERS
        properties += _table(deadline, trace)
    elif deadline is not None:
        flags |= HEADERS
        properties += _DEADLINE_TABLE + _INT64.pack(deadline)
    properties += b"\x01" + _short(correlation_id)
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


def _table(deadline: int | None, strings: dict[str, str]) -> bytes:
    """A ``headers`` table of the deadline (if any) and long strings, keys sorted as
    pamqp sorts them."""
    entries = {
        name: _short(name) + b"S" + struct.pack(">I", len(value.encode())) + value.encode()
        for name, value in strings.items()
    }
    if deadline is not None:
        entries[DEADLINE_HEADER] = _DEADLINE_ENTRY + _INT64.pack(deadline)
    table = b"".join(entries[name] for name in sorted(entries))
    return struct.pack(">I", len(table)) + table


def deadline_of(headers: dict[str, Any]) -> int | None:
    """The :data:`DEADLINE_HEADER` of a headers table a driver read (``None``: none, or
    not a number)."""
    value = headers.get(DEADLINE_HEADER)
    return int(value) if is_number(value) else None


def ack(channel: int, delivery_tag: int) -> bytes:
    """A ``basic.ack`` of one delivery."""
    return _frame(METHOD, channel, _ACK.pack(BASIC, ACK, delivery_tag, 0))


class Incomplete(Exception):
    """The data ends before the delivery does: wait for more."""


def parse_delivery(data: bytes, channel: int) -> Delivery | None:
    """The message ``data`` holds, if ``data`` is exactly one ``basic.deliver`` on
    ``channel`` followed by its header and body frames, else ``None`` (see
    :func:`read_delivery`; a partial delivery is ``None`` here too)."""
    try:
        delivery = read_delivery(data, 0, channel)
    except (Incomplete, ValueError, struct.error):
        return None
    return delivery if delivery is not None and delivery.end == len(data) else None


def read_delivery(data: bytes | bytearray, start: int, channel: int) -> Delivery | None:
    """The delivery on ``channel`` whose ``basic.deliver`` frame begins at ``start``.

    Raises :class:`Incomplete` when ``data`` ends before its last frame does.
    Returns ``None`` for anything it does not read: another frame at
    ``start`` (a heartbeat, a ``basic.return``, a close), a frame of another
    channel between the delivery's frames (allowed by the spec, never seen
    from RabbitMQ), a ``headers`` table pamqp cannot decode either. The caller
    then hands the bytes to its AMQP driver, which deals with everything. A
    malformed frame raises ``ValueError`` or ``struct.error``.

    Every property is read as aiormq reads it (a ``headers`` table by pamqp's own
    decoder, unless it is only a request's deadline), so a consumer sees the same
    :class:`Delivery` from either path.
    """
    kind, number, size, position = _frame_at(data, start)
    if (
        kind != METHOD
        or number != channel
        or _METHOD_ID.unpack_from(data, position) != (BASIC, DELIVER)
    ):
        return None
    try:
        tag_at = position + 5 + data[position + 4]  # after the consumer tag
        delivery_tag, redelivered = _TAG.unpack_from(data, tag_at)
        exchange, at = _short_at(data, tag_at + _TAG.size)
        routing_key, _ = _short_at(data, at)
    except (struct.error, IndexError, UnicodeDecodeError):
        return None
    kind, number, size, position = _frame_at(data, position + size + 1)
    end = position + size
    if kind != HEADER or number != channel:
        return None
    _class, _weight, body_size, flags = _HEADER.unpack_from(data, position)
    if flags & MORE_FLAGS:
        return None
    position += _HEADER.size
    strings: dict[int, str] = {}
    headers: dict[str, Any] = {}
    deadline = timestamp = None
    try:
        for bit, width in _PROPERTIES:
            if not flags & bit:
                continue
            if width == _TABLE:
                deadline = _deadline_at(data, position)
                if deadline is not None:
                    headers = {DEADLINE_HEADER: deadline}
                    position += len(_DEADLINE_TABLE) + _INT64.size
                    continue
                table_end = position + 4 + _UINT32.unpack_from(data, position)[0]
                if table_end > end:
                    return None
                _, headers = decode.field_table(bytes(data[position:table_end]))
                deadline = deadline_of(headers)
                position = table_end
            elif bit == TIMESTAMP:
                timestamp = _UINT64.unpack_from(data, position)[0]
                position += 8
            elif width:
                position += width
            else:
                strings[bit], position = _short_at(data, position)
    except (IndexError, UnicodeDecodeError, ValueError, struct.error):
        return None
    if position != end:
        return None
    parts, position, received = [], end + 1, 0
    while received < body_size:
        kind, number, size, position = _frame_at(data, position)
        if kind != BODY or number != channel:
            return None
        parts.append(bytes(data[position : position + size]))
        received += size
        position += size + 1
    if received != body_size:
        return None
    return Delivery(
        body=parts[0] if len(parts) == 1 else b"".join(parts),
        headers=headers,
        exchange=exchange,
        routing_key=routing_key,
        delivery_tag=delivery_tag,
        redelivered=bool(redelivered),
        message_id=strings.get(MESSAGE_ID),
        content_type=strings.get(CONTENT_TYPE),
        content_encoding=strings.get(CONTENT_ENCODING),
        correlation_id=strings.get(CORRELATION_ID),
        reply_to=strings.get(REPLY_TO),
        type=strings.get(TYPE),
        app_id=strings.get(APP_ID),
        timestamp=timestamp,
        deadline=deadline,
        frames=2 + len(parts),
        end=position,
    )


def is_delivery(data: bytes | bytearray, start: int) -> bool:
    """Whether the frame at ``start`` (whole or not) is a ``basic.deliver``."""
    at = start + 7
    return (
        len(data) >= at + 4
        and data[start] == METHOD
        and _METHOD_ID.unpack_from(data, at) == (BASIC, DELIVER)
    )


def _short_at(data: bytes | bytearray, position: int) -> tuple[str, int]:
    """The short string at ``position`` and where it ends."""
    length = data[position]
    value = bytes(data[position + 1 : position + 1 + length])
    if len(value) != length:
        raise IndexError("short string cut short")
    return value.decode(), position + 1 + length


def _deadline_at(data: bytes | bytearray, position: int) -> int | None:
    """The deadline of a ``headers`` table at ``position`` holding only that entry, else
    ``None``."""
    value_at = position + len(_DEADLINE_TABLE)
    if data[position:value_at] != _DEADLINE_TABLE:
        return None
    return int(_INT64.unpack_from(data, value_at)[0])


def _frame_at(data: bytes | bytearray, start: int) -> tuple[int, int, int, int]:
    """``(type, channel, size, payload offset)`` of the whole frame at ``start``;
    raises :class:`Incomplete` if ``data`` ends before it does, ``ValueError``
    if it does not end with the frame-end octet."""
    if len(data) < start + FRAME_OVERHEAD:
        raise Incomplete
    kind, channel, size = _FRAME.unpack_from(data, start)
    if len(data) < start + FRAME_OVERHEAD + size:
        raise Incomplete
    if data[start + 7 + size] != 0xCE:
        raise ValueError(f"AMQP frame at offset {start} does not end with 0xCE")
    return kind, channel, size, start + 7
