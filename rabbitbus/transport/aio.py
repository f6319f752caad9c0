"""The async transport of long-running processes: one plain connection per runtime
(:mod:`~rabbitbus.transport.opening`), its aiormq channels and deliveries under names of
ours, and what services do with them.

Services (:mod:`rabbitbus.consuming.worker`, :mod:`rabbitbus.rpc.server`) and the async
RPC client speak to these names only; the driver's own types stay in this package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import aiormq
import aiormq.abc
import aiormq.exceptions
from pamqp import commands

from rabbitbus.conf import ConnectionSettings, Endpoint, settings
from rabbitbus.messages import Delivery
from rabbitbus.topology import Topology
from rabbitbus.transport import amqp_tap, frames, opening
from rabbitbus.transport.declare import adeclare

logger = logging.getLogger("rabbitbus.transport.aio")

#: A runtime's connection: aio-pika's plain one, whose channels are aiormq's.
Connection = opening.Connection
Channel = aiormq.abc.AbstractChannel
#: A delivery as aiormq hands it over (:mod:`rabbitbus.messages` reads it into a Delivery).
Incoming = aiormq.abc.DeliveredMessage
ConsumerCallback = aiormq.abc.ConsumerCallback
#: The broker's ``basic.cancel`` of a consumer (its queue deleted, its node gone).
CancelFrame = commands.Basic.Cancel

AMQPError = aiormq.exceptions.AMQPError
ChannelError = aiormq.exceptions.AMQPChannelError
ChannelClosed = aiormq.exceptions.ChannelClosed
ChannelNotFound = aiormq.exceptions.ChannelNotFoundEntity
PreconditionFailed = aiormq.exceptions.ChannelPreconditionFailed

#: Errors after which the runtime reconnects rather than exits.
RECOVERABLE = (
    AMQPError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


async def connect(endpoint: Endpoint, cs: ConnectionSettings, *, tapped: bool) -> Connection:
    """A plain connection to ``endpoint`` (the runtime owns its recovery), with a
    :class:`~amqp_tap.DeliveryTap` when ``tapped`` (and ``FAST_PATHS`` is on);
    raises one of :data:`RECOVERABLE` (or a timeout) when it cannot be opened in time."""
    tap = amqp_tap.TapTransportFactory() if tapped and settings.FAST_PATHS else None
    return await opening.open_plain(endpoint, cs, transport_factory=tap)


async def channel(connection: Connection, *, publisher_confirms: bool = True) -> Channel:
    """A new channel of ``connection``; raises ``ConnectionError`` once it is closed."""
    underlay = _underlay(connection)
    if underlay is None:
        raise ConnectionError("the connection is closed")
    return await underlay.channel(publisher_confirms=publisher_confirms)


def server_properties(connection: Connection) -> dict[str, Any]:
    """What the broker told of itself when ``connection`` opened (product, version, ...)."""
    underlay = _underlay(connection)
    return dict(underlay.server_properties or {}) if underlay else {}


async def closed(connection: Connection) -> str:
    """Wait until ``connection`` closes; why it did."""
    underlay = _underlay(connection)
    if underlay is None:
        return "closed"
    try:
        await underlay.closing
    except BaseException as exc:  # noqa: BLE001 - the reason is all we want
        return f"{type(exc).__name__}: {exc}"
    return "closed"


def _underlay(connection: Connection) -> aiormq.abc.AbstractConnection | None:
    """The aiormq connection under ``connection`` (``None`` once aio-pika closed it)."""
    transport = connection.transport
    return transport.connection if transport else None


async def close(connection: Connection, why: BaseException | None = None) -> None:
    """Close ``connection`` (for ``why``, if given) within five seconds; failures are logged
    at DEBUG."""
    try:
        await asyncio.wait_for(connection.close(why) if why else connection.close(), 5)
    except Exception:  # noqa: BLE001 - aiormq raises a bare Exception on a closing one
        logger.debug("Error while closing the connection", exc_info=True)


def take_deliveries(
    connection: Connection, channel: Channel, taker: Callable[[Delivery], None], *, ordered: bool
) -> amqp_tap.DeliveryTap | None:
    """Have ``connection``'s tap hand ``channel``'s deliveries to ``taker`` (see
    :meth:`amqp_tap.DeliveryTap.take`); the tap, or ``None`` (no tap, or fast paths off:
    deliveries come through aiormq's consumer, as any the tap does not read do)."""
    tap = amqp_tap.of(connection) if settings.FAST_PATHS else None
    if tap is not None:
        tap.take(channel, taker, ordered=ordered)
    return tap


async def consume(
    channel: Channel,
    entities: Topology,
    queue: str,
    prefetch: int,
    callback: ConsumerCallback,
) -> str:
    """Declare ``entities``, consume ``queue`` and verify the broker lists the consumer.

    Returns the consumer tag; raises ``ConnectionError`` if the consumer is missing
    (the runtime then reconnects rather than sit on a queue nobody consumes).
    """
    await adeclare(channel, entities)
    await channel.basic_qos(prefetch_count=prefetch)
    ok = await channel.basic_consume(queue, callback)
    tag = str(ok.consumer_tag)
    declared = await channel.queue_declare(queue, passive=True)
    if not declared.consumer_count or tag not in getattr(channel, "consumers", {}):
        raise ConnectionError(f"no consumer registered on {queue!r}")
    return tag


async def cancel(channel: Channel | None, tag: str | None, queue: str) -> None:
    """Cancel consumer ``tag`` if its channel is open; failures are logged, never raised."""
    if channel is None or tag is None or channel.is_closed:
        return
    try:
        await asyncio.wait_for(channel.basic_cancel(tag), 5)
    except (*RECOVERABLE, RuntimeError) as exc:
        logger.info("Could not cancel consumer on %s (%s)", queue, type(exc).__name__)


async def send(
    channel: Channel, body: bytes, routing_key: str, properties: Any, *, mandatory: bool = False
) -> None:
    """Publish on the default exchange without waiting for the write to drain (writes stay
    in order); ``properties`` are pamqp's ``Basic.Properties``. On a channel with publisher
    confirms, this waits for the confirm (a return, for a ``mandatory`` publish, comes first:
    see :func:`on_returns`)."""
    await cast(aiormq.Channel, channel).basic_publish(
        body, routing_key=routing_key, properties=properties, mandatory=mandatory, wait=False
    )


def on_returns(channel: Channel, returned: Callable[[Delivery], None]) -> None:
    """Hand ``returned`` each message the broker returns on ``channel``: a ``mandatory``
    publish that no queue took, returned before anything else could answer it.

    aiormq reports returns only to publishes awaiting their confirm. With ``FAST_PATHS``
    on, ``channel`` needs no confirms: its returns are read here, through aiormq's private
    ``_on_return_frame`` (replaced), ``__get_content_header`` and ``_read_content``. Off,
    ``channel`` must have publisher confirms (each :func:`send` then waits for its confirm)
    and aiormq's public ``on_return_callbacks`` hear them.
    """

    def hear(message: Incoming) -> None:
        returned(delivery_of(message))

    raw = cast(Any, channel)
    if not settings.FAST_PATHS:
        raw.on_return_callbacks.add(hear)
        return

    async def on_return_frame(frame: commands.Basic.Return) -> None:
        header = await raw._Channel__get_content_header()
        hear(await raw._read_content(frame, header))

    raw._on_return_frame = on_return_frame


def delivery_of(message: Incoming) -> Delivery:
    """What rabbitbus reads of a message aiormq delivered (to a consumer, an RPC server or
    a client's reply consumer)."""
    properties = message.header.properties
    method: Any = message.delivery
    headers = dict(properties.headers or {})
    timestamp = properties.timestamp
    return Delivery(
        body=message.body,
        headers=headers,
        exchange=getattr(method, "exchange", None) or "",
        routing_key=getattr(method, "routing_key", None) or "",
        delivery_tag=getattr(method, "delivery_tag", None) or 0,
        redelivered=bool(getattr(method, "redelivered", False)),
        message_id=properties.message_id,
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        type=properties.message_type,
        app_id=properties.app_id,
        timestamp=int(timestamp.timestamp()) if timestamp is not None else None,
        deadline=frames.deadline_of(headers),
    )
