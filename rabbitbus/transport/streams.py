"""A live stream of an exchange's messages (aio-pika): one exclusive, server-named,
auto-delete queue bound with some routing keys, gone with its channel.

:mod:`rabbitbus.live` feeds WebSockets from these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aio_pika

from rabbitbus.exceptions import RabbitBusError
from rabbitbus.messages import Delivery
from rabbitbus.transport.aio_connections import get_async

#: Errors that mean the broker could not be subscribed to.
ERRORS: tuple[type[BaseException], ...] = (RabbitBusError, aio_pika.exceptions.AMQPError, OSError)

OnMessage = Callable[[Delivery], Awaitable[None]]


class Stream:
    """Messages of one exchange, each handed to ``on_message`` as a :class:`Delivery`."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel) -> None:
        self.channel = channel

    @classmethod
    async def open(
        cls,
        alias: str,
        exchange: str,
        keys: Sequence[str],
        on_message: OnMessage,
        *,
        declare_topic: bool = False,
    ) -> Stream:
        """Subscribe to ``exchange`` (declared first, as a durable topic exchange, when
        ``declare_topic``; else it must exist) with ``keys``."""
        connection = await get_async(alias).get()
        channel = await connection.channel()
        stream = cls(channel)
        try:
            source: aio_pika.abc.AbstractExchange
            if declare_topic:
                source = await channel.declare_exchange(
                    exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
            else:
                source = await channel.get_exchange(exchange, ensure=True)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            for key in keys:
                await queue.bind(source, key)

            async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await on_message(
                    Delivery(
                        body=message.body,
                        headers=dict(message.headers or {}),
                        exchange=message.exchange or "",
                        routing_key=message.routing_key or "",
                        message_id=message.message_id,
                        content_type=message.content_type,
                        type=message.type,
                    )
                )

            await queue.consume(deliver, no_ack=True)
        except BaseException:
            await stream.close()
            raise
        return stream

    async def close(self) -> None:
        """Close the channel: the exclusive queue goes with it."""
        if not self.channel.is_closed:
            await self.channel.close()
