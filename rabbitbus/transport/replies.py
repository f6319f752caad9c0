"""An RPC server's answers on the wire (aiormq): the reply and the ack, an ack alone,
a reject.

With ``RABBITBUS["FAST_PATHS"]`` on (the default), the reply and its ack are marshalled
by :mod:`rabbitbus.transport.frames` and written in one go, straight to the socket when
the connection has a :class:`~rabbitbus.transport.amqp_tap.DeliveryTap` and aiormq has
nothing queued. Off, they go through aiormq's ``basic_publish`` and ``basic_ack``.
"""

from __future__ import annotations

import logging
from typing import cast

import aiormq
from aiormq.abc import ChannelFrame

from rabbitbus import messages
from rabbitbus.conf import settings
from rabbitbus.messages import Delivery
from rabbitbus.transport import amqp_tap, frames
from rabbitbus.transport.aio import RECOVERABLE, Channel

logger = logging.getLogger("rabbitbus.transport.replies")


async def reply_and_ack(
    channel: Channel,
    request: Delivery,
    body: bytes,
    *,
    content_type: str,
    message_type: str,
    tap: amqp_tap.DeliveryTap | None = None,
) -> None:
    """Publish the reply to ``request`` and ack it, the reply first (a request is never
    acked unanswered).

    On the fast path both go in one socket write: aiormq writes each ``basic_publish``
    and ``basic_ack`` separately, and on loopback every write wakes the broker; one
    write instead of two took about a tenth off a sequential call's latency
    (docs/benchmarks.md), and frames are marshalled in a few us, not ~30.

    Not ``mandatory``: RabbitMQ 3.10 returns a mandatory reply to a direct
    reply-to address (https://www.rabbitmq.com/docs/3.13/direct-reply-to)
    even when it delivered it (one ``basic.return`` per call, measured), so a
    return says nothing about the caller. A reply to a caller that is gone is
    dropped by the broker. No confirm either: the caller's reply or its
    timeout is the confirmation that counts. If the channel closed meanwhile,
    nothing is sent and the broker requeues the request.
    """
    if channel.is_closed:
        logger.info("Could not reply to RPC %s (channel closed)", request.correlation_id)
        return
    if not settings.FAST_PATHS:
        await channel.basic_publish(
            body,
            routing_key=str(request.reply_to),
            properties=messages.pamqp_properties(
                messages.properties(
                    content_type=content_type,
                    delivery_mode=messages.TRANSIENT,
                    correlation_id=str(request.correlation_id),
                    type=message_type,
                )
            ),
        )
        await channel.basic_ack(request.delivery_tag)
        return
    concrete = cast(aiormq.Channel, channel)
    number = concrete.number
    payload = frames.publish(
        number,
        str(request.reply_to),
        body,
        body_frame_max=concrete.max_content_size,
        content_type=content_type,
        correlation_id=str(request.correlation_id),
        message_type=message_type,
    ) + frames.ack(number, request.delivery_tag)
    await _write(channel, payload, tap)


async def ack(channel: Channel, request: Delivery, tap: amqp_tap.DeliveryTap | None = None) -> None:
    """Ack ``request`` unanswered (nothing is sent on a closed channel)."""
    if channel.is_closed:
        return
    if not settings.FAST_PATHS:
        await channel.basic_ack(request.delivery_tag)
        return
    await _write(
        channel, frames.ack(cast(aiormq.Channel, channel).number, request.delivery_tag), tap
    )


async def _write(channel: Channel, payload: bytes, tap: amqp_tap.DeliveryTap | None) -> None:
    """Send whole frames: straight to the socket when aiormq has nothing queued, else
    after what it has (nothing is sent on a closed channel: the broker requeues)."""
    if channel.is_closed:
        return
    writer = tap.writer if tap is not None else None
    if writer is not None and channel.connection.write_queue.empty() and not writer.is_closing():
        writer.write(payload)
        return
    await cast(aiormq.Channel, channel).write_queue.put(
        ChannelFrame(payload=payload, should_close=False)
    )


async def reject(channel: Channel, request: Delivery, *, requeue: bool) -> None:
    """Drop or requeue a request unanswered."""
    try:
        await channel.basic_reject(request.delivery_tag, requeue=requeue)
    except (*RECOVERABLE, RuntimeError) as exc:
        # The channel died after delivery: the broker already requeued it.
        logger.info(
            "RPC request %s belongs to a closed channel (%s)",
            request.delivery_tag,
            type(exc).__name__,
        )
