"""Messages both ways, no I/O: payload and options <-> AMQP properties.

Out: a :class:`Message` is built into an :class:`Envelope`, whose properties
:func:`amqp_properties` gives every publish path. In: every path that receives (a
driver's consumer, the RPC fast paths, ``basic.get`` in the dead-letter browser, the live
sockets) reads what arrived into one :class:`Delivery`; a consumer's is decoded
(:func:`decode_body`) into the :class:`ReceivedMessage` its handler gets. A message
looks the same whichever side of the sync/async line produced or read it.

What goes out is checked here, before anything is sent (:func:`checked_name`,
:func:`checked_timeout`): pika asserts and aiormq raises ``TypeError`` or
``ValueError`` for the same bad value, so the two sides would fail differently.
"""

from __future__ import annotations

import math
import reprlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pamqp.commands import Basic

from rabbitbus import serializers
from rabbitbus.conf.schema import is_number
from rabbitbus.exceptions import DecodeError, InvalidArgument, MessageTooLarge
from rabbitbus.observability import traces

PERSISTENT = 2
TRANSIENT = 1
IDENTITY_ENCODINGS = frozenset({"", "identity", "utf-8", "utf8"})
#: Most bytes (UTF-8) an AMQP short string holds: an exchange name, a routing key.
SHORTSTR_MAX = 255


@dataclass
class Message:
    """A message to publish: where it goes, what it carries, and its options.

    ``expiration`` is in seconds (a number or a ``timedelta``); ``headers``
    must be JSON-like values. Pass instances to ``publish_many``.
    """

    exchange: str
    routing_key: str
    payload: Any = None
    headers: dict[str, Any] | None = None
    message_id: str | None = None
    type: str | None = None
    persistent: bool = True
    priority: int | None = None
    expiration: float | timedelta | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    mandatory: bool = True


@dataclass
class Envelope:
    """An encoded message, ready for either transport."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    content_type: str
    timestamp: int
    app_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)
    type: str | None = None
    delivery_mode: int = PERSISTENT
    priority: int | None = None
    expiration: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    mandatory: bool = True


def properties(
    *,
    content_type: str | None,
    delivery_mode: int,
    type: str | None = None,  # noqa: A002 - AMQP's name
    headers: dict[str, Any] | None = None,
    message_id: str | None = None,
    timestamp: int | None = None,
    app_id: str | None = None,
    priority: int | None = None,
    expiration: str | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """The AMQP basic properties of an outgoing message, with pika's names: every publish
    path (sync, async, the relay, retries, replays, RPC requests and replies) takes its
    properties from here; :func:`pamqp_properties` gives aiormq the same."""
    return {
        "content_type": content_type,
        "delivery_mode": delivery_mode,
        "message_id": message_id,
        "timestamp": timestamp,
        "app_id": app_id,
        "headers": headers or None,
        "type": type,
        "priority": priority,
        "expiration": expiration,
        "correlation_id": correlation_id,
        "reply_to": reply_to,
    }


def amqp_properties(envelope: Envelope) -> dict[str, Any]:
    """The properties of ``envelope`` (:func:`properties`)."""
    return properties(
        content_type=envelope.content_type,
        delivery_mode=envelope.delivery_mode,
        message_id=envelope.message_id,
        timestamp=envelope.timestamp,
        app_id=envelope.app_id,
        headers=envelope.headers,
        type=envelope.type,
        priority=envelope.priority,
        expiration=envelope.expiration,
        correlation_id=envelope.correlation_id,
        reply_to=envelope.reply_to,
    )


def pamqp_properties(properties: dict[str, Any]) -> Basic.Properties:
    """``properties`` (pika's names, as :func:`amqp_properties` gives them) for aiormq:
    ``type`` is ``message_type`` there, and a timestamp is a datetime."""
    fields = dict(properties)
    fields["message_type"] = fields.pop("type", None)
    timestamp = fields.get("timestamp")
    if timestamp is not None:
        fields["timestamp"] = datetime.fromtimestamp(timestamp, tz=UTC)
    return Basic.Properties(**fields)


def expiration_ms(expiration: float | timedelta | None) -> str | None:
    """AMQP wants per-message TTL as a string of whole milliseconds."""
    if expiration is None:
        return None
    seconds = expiration.total_seconds() if isinstance(expiration, timedelta) else expiration
    if not is_number(seconds) or not 0 <= seconds < math.inf:
        raise InvalidArgument(
            "expiration must be a non-negative number of seconds or a timedelta, "
            f"not {reprlib.repr(expiration)}."
        )
    return str(int(seconds * 1000))


def checked_name(value: object, what: str) -> str:
    """``value`` if AMQP can carry it as a short string (a ``str`` of at most
    :data:`SHORTSTR_MAX` bytes of UTF-8), else :class:`InvalidArgument` naming ``what``
    (``exchange``, ``routing key``...) and the value."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"The {what} must be a str, not {type(value).__name__} {reprlib.repr(value)}."
        )
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate
        raise InvalidArgument(f"The {what} {reprlib.repr(value)} is not valid UTF-8.") from None
    if size > SHORTSTR_MAX:
        raise InvalidArgument(
            f"The {what} {reprlib.repr(value)} is {size} bytes of UTF-8; AMQP allows at most "
            f"{SHORTSTR_MAX}."
        )
    return value


def checked_timeout(timeout: object, default: str) -> float | None:
    """``timeout`` in seconds if it is a positive finite number, ``None`` for ``None``
    (the caller then takes ``default``, which the error names); anything else (zero, a
    negative or a string, which would fail only once the message is sent, if at all) is
    :class:`InvalidArgument`."""
    if timeout is None:
        return None
    if is_number(timeout) and 0 < timeout < math.inf:
        return timeout
    raise InvalidArgument(
        f"timeout must be a positive number of seconds, or None for {default}; "
        f"not {reprlib.repr(timeout)}."
    )


def _check_properties(message: Message) -> None:
    """:class:`InvalidArgument` for a property AMQP cannot carry: the short strings
    (``message_id``, ``type``, ``correlation_id``, ``reply_to``) and ``priority`` (0-255)."""
    for what, value in (
        ("message_id", message.message_id),
        ("type", message.type),
        ("correlation_id", message.correlation_id),
        ("reply_to", message.reply_to),
    ):
        if value is not None:
            checked_name(value, what)
    priority = message.priority
    if priority is not None and not (type(priority) is int and 0 <= priority <= 255):
        raise InvalidArgument(
            f"priority must be a whole number 0-255 or None, not {reprlib.repr(priority)}."
        )


def checked_size(body: bytes) -> bytes:
    """``body``, or :class:`MessageTooLarge` if it is over ``MAX_MESSAGE_SIZE``."""
    from rabbitbus.conf import settings

    if len(body) > settings.MAX_MESSAGE_SIZE:
        raise MessageTooLarge(
            f"Message body is {len(body)} bytes, over MAX_MESSAGE_SIZE "
            f"({settings.MAX_MESSAGE_SIZE} bytes); nothing was sent."
        )
    return body


def build(message: Message, serializer: Any = None, *, operation: str = "publish") -> Envelope:
    """Encode ``message`` into an :class:`Envelope`.

    ``operation`` names the trace span recorded for it: ``publish``, or ``create`` for
    a message written now and published later (an outbox row).

    Raises :class:`SerializationError` when the payload cannot be encoded,
    :class:`MessageTooLarge` (a ``ValueError``) when the body is over
    ``MAX_MESSAGE_SIZE`` and :class:`InvalidArgument` for an exchange, routing key,
    property or expiration AMQP cannot carry: nothing is sent in any case.
    """
    from rabbitbus.conf import settings

    exchange = checked_name(message.exchange, "exchange")
    routing_key = checked_name(message.routing_key, "routing key")
    _check_properties(message)
    serializer = serializer or serializers.default()
    body = checked_size(serializer.dumps(message.payload))
    message_id = message.message_id or uuid.uuid4().hex
    headers = dict(message.headers or {})
    if traces.on:
        traces.inject_publish(exchange, routing_key, message_id, headers, operation=operation)
    return Envelope(
        exchange=exchange,
        routing_key=routing_key,
        body=body,
        message_id=message_id,
        content_type=serializer.content_type,
        timestamp=int(time.time()),
        app_id=settings.APP_ID,
        headers=headers,
        type=message.type,
        delivery_mode=PERSISTENT if message.persistent else TRANSIENT,
        priority=message.priority,
        expiration=expiration_ms(message.expiration),
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        mandatory=message.mandatory,
    )


@dataclass(slots=True)
class Delivery:
    """One message as it arrived, from whichever path read it.

    Not frozen: a frozen dataclass sets each of its 17 fields through
    ``object.__setattr__``, about 5x the cost of building it, once per delivery on the
    RPC and worker hot paths."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str = ""
    routing_key: str = ""
    delivery_tag: int = 0
    redelivered: bool = False
    message_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    type: str | None = None
    app_id: str | None = None
    timestamp: int | None = None
    #: An RPC request's deadline (``x-rabbitbus-deadline``, epoch milliseconds), if any.
    deadline: int | None = None
    #: Read from bytes by :func:`rabbitbus.transport.frames.read_delivery`: how many
    #: frames carried it and where its last one ends (0 when a driver read it).
    frames: int = 0
    end: int = 0


@dataclass
class ReceivedMessage:
    """What a handler receives: the decoded body and where the message came from.

    ``exchange`` and ``routing_key`` are those the message was first published
    with, even on a retry (which comes back through a delay queue).
    ``attempt`` counts from 1.
    """

    body: Any
    headers: dict[str, Any]
    routing_key: str
    exchange: str
    message_id: str | None
    redelivered: bool
    attempt: int
    content_type: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    raw_body: bytes = field(default=b"", repr=False)


def received(
    delivery: Delivery, *, exchange: str, routing_key: str, attempt: int
) -> ReceivedMessage:
    """``delivery`` decoded for a handler (raises :class:`DecodeError`); ``exchange``,
    ``routing_key`` and ``attempt`` as the consumer reads them off its headers."""
    return ReceivedMessage(
        body=decode_body(delivery.body, delivery.content_type, delivery.content_encoding),
        headers=delivery.headers,
        routing_key=routing_key,
        exchange=exchange,
        message_id=delivery.message_id,
        redelivered=delivery.redelivered,
        attempt=attempt,
        content_type=delivery.content_type,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
        raw_body=delivery.body,
    )


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None = None) -> Any:
    """Decode a received body, or raise :class:`DecodeError`.

    Compressed or otherwise encoded bodies are refused: rabbitbus never
    inflates untrusted input. Empty bodies are refused too.
    """
    from rabbitbus.conf import settings

    if (content_encoding or "").lower() not in IDENTITY_ENCODINGS:
        raise DecodeError(f"Unsupported content encoding {content_encoding!r}")
    if not body:
        raise DecodeError("Empty body")
    if len(body) > settings.MAX_MESSAGE_SIZE:
        raise DecodeError(f"Body of {len(body)} bytes is over MAX_MESSAGE_SIZE")
    return serializers.for_content_type(content_type).loads(body)
