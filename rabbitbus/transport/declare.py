"""Queues and topology over the wire: declares (the same operations on a pika channel
and on an aiormq one, the broker's refusals read into rabbitbus's errors), passive
declares, purges and ``basic.get``.

What to declare is data (:mod:`rabbitbus.topology`); this module only sends it.
"""

from __future__ import annotations

from typing import Any

import aiormq.abc
import aiormq.channel
import aiormq.exceptions
import pika.exceptions

from rabbitbus.messages import Delivery
from rabbitbus.topology import Entity, Exchange, Queue, Topology, translate_error


def declare(channel: Any, topology: Topology) -> list[Entity]:
    """Declare ``topology`` on a pika ``BlockingChannel``; returns what was declared.

    A conflict closes pika's channel: the caller must open a fresh one.
    """
    declared: list[Entity] = []
    for entity in topology:
        try:
            _declare_one(channel, entity)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise translate_error(entity, exc.reply_code, exc.reply_text) from exc
        declared.append(entity)
    return declared


def operation(entity: Entity) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The channel method, arguments and keywords that declare ``entity``: the same for a
    pika ``BlockingChannel`` and an aiormq channel."""
    if isinstance(entity, Exchange):
        return (
            "exchange_declare",
            (entity.name,),
            {
                "exchange_type": entity.type,
                "durable": entity.durable,
                "auto_delete": entity.auto_delete,
                "arguments": entity.arguments or None,
            },
        )
    if isinstance(entity, Queue):
        return (
            "queue_declare",
            (entity.name,),
            {
                "durable": entity.durable,
                "auto_delete": entity.auto_delete,
                "exclusive": entity.exclusive,
                "arguments": entity.broker_arguments(),
            },
        )
    return (
        "queue_bind",
        (entity.queue, entity.exchange, entity.routing_key),
        {"arguments": entity.arguments or None},
    )


def _declare_one(channel: Any, entity: Entity) -> None:
    method, args, kwargs = operation(entity)
    getattr(channel, method)(*args, **kwargs)


async def adeclare(channel: aiormq.abc.AbstractChannel, topology: Topology) -> list[Entity]:
    """Declare ``topology`` on an aiormq channel; returns what was declared."""
    declared: list[Entity] = []
    for entity in topology:
        try:
            await _adeclare_one(channel, entity)
        except aiormq.exceptions.ChannelClosed as exc:
            code, text = aiormq_reply(exc)
            raise translate_error(entity, code, text) from exc
        declared.append(entity)
    return declared


def aiormq_reply(exc: BaseException) -> tuple[int, str]:
    """The reply code and text of an aiormq channel or connection close.

    aiormq raises ``ChannelClosed(code, text)`` for codes it does not map, and for the
    ones it maps (403, 404, 405, 406) a class per code holding the text alone
    (``ChannelNotFoundEntity("NOT_FOUND - ...")``): the code is then the class's.
    """
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    frame = args[0] if args else None
    code = getattr(frame, "reply_code", None)
    if code:
        return int(code), str(getattr(frame, "reply_text", None) or exc)
    by_class: dict[type[BaseException], int] = {
        type_: number for number, type_ in aiormq.channel.EXCEPTION_MAPPING.items()
    }
    return by_class.get(type(exc), 0), frame if isinstance(frame, str) else str(exc)


async def _adeclare_one(channel: aiormq.abc.AbstractChannel, entity: Entity) -> None:
    method, args, kwargs = operation(entity)
    await getattr(channel, method)(*args, **kwargs)


def passive(channel: Any, queue: str) -> tuple[int, int] | None:
    """``(ready messages, consumers)`` of ``queue`` on a pika channel, or ``None`` when
    there is no such queue (the broker then closes the channel: open a fresh one)."""
    try:
        ok = channel.queue_declare(queue, passive=True).method
    except pika.exceptions.ChannelClosedByBroker:
        return None
    return int(ok.message_count), int(ok.consumer_count)


def purge(channel: Any, queue: str) -> bool:
    """Empty ``queue`` on a pika channel; ``False`` (and the channel closed) if it does not
    exist."""
    try:
        channel.queue_purge(queue)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    return True


def get(channel: Any, queue: str) -> Delivery | None:
    """The message at the head of ``queue`` (``basic.get`` on a pika channel, to be acked
    by its ``delivery_tag`` or left to be requeued), or ``None`` when it is empty."""
    method, properties, body = channel.basic_get(queue, auto_ack=False)
    if method is None:
        return None
    timestamp = properties.timestamp
    return Delivery(
        body=body,
        headers=dict(properties.headers or {}),
        exchange=method.exchange or "",
        routing_key=method.routing_key or "",
        delivery_tag=method.delivery_tag,
        redelivered=bool(method.redelivered),
        message_id=properties.message_id,
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        type=properties.type,
        app_id=properties.app_id,
        timestamp=int(timestamp) if timestamp is not None else None,
    )
