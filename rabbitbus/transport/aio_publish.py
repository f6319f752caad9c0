"""One message published on an event loop's confirm channel (aiormq), and what came of it.

:mod:`rabbitbus.publishing` owns the retries, deadlines and batches; this module owns
the wire: the properties, the publish, and the broker's answer read as an outcome.
"""

from __future__ import annotations

from typing import Any

import aiormq.exceptions
from aiormq import spec

from rabbitbus import messages
from rabbitbus.exceptions import NotConfirmed
from rabbitbus.messages import Envelope
from rabbitbus.transport.aio_connections import AsyncConnection
from rabbitbus.transport.confirms import (
    Outcome,
    channel_error,
    dropped_with_the_channel,
    unroutable,
)


class DroppedWithTheChannel(Exception):
    """The broker closed the publishing channel over another message (a 404 naming another
    exchange) before this one was confirmed: aio-pika reopens the channel, send it again."""


#: Errors after which the robust connection or channel will recover: retry.
TRANSIENT: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    DroppedWithTheChannel,
    ConnectionError,
    OSError,
)


def properties(envelope: Envelope) -> spec.Basic.Properties:
    return messages.pamqp_properties(messages.amqp_properties(envelope))


async def publish_once(envelope: Envelope, conn: AsyncConnection, timeout: float | None) -> Outcome:
    """Publish ``envelope`` on ``conn``'s confirm channel and return its outcome.

    Raises ``TimeoutError`` when no confirm came within ``timeout``, and one of
    :data:`TRANSIENT` when the connection or channel was lost meanwhile (the channel
    also when the broker closed it over another message).
    """
    channel = await conn.publish_channel()
    underlay = await channel.get_underlay_channel()
    try:
        confirmation = await underlay.basic_publish(
            envelope.body,
            exchange=envelope.exchange,
            routing_key=envelope.routing_key,
            properties=properties(envelope),
            mandatory=envelope.mandatory,
            timeout=timeout,
        )
    except aiormq.exceptions.PublishError as exc:
        frame: Any = exc.frame  # a Basic.Return
        return unroutable(frame.exchange, frame.routing_key, frame.reply_text)
    except aiormq.exceptions.DeliveryError:
        # A Basic.Nack, which aiormq raises (the sync path returns NotConfirmed for it).
        await conn.drop_publish_channel(channel)
        return NotConfirmed(f"Broker nacked message {envelope.message_id}")
    except aiormq.exceptions.ChannelClosed as exc:
        code = 404 if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity) else 0
        text = " ".join(map(str, exc.args))
        if code == 404 and dropped_with_the_channel(envelope.exchange, text):
            raise DroppedWithTheChannel(text) from exc
        return channel_error(code, text)
    if isinstance(confirmation, spec.Basic.Nack):
        await conn.drop_publish_channel(channel)
        return NotConfirmed(f"Broker nacked message {envelope.message_id}")
    return None
