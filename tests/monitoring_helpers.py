"""Helpers shared by the monitoring, dead-letter and admin tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
from django.conf import settings as django_settings
from django.test import override_settings

from tests.broker import MANAGEMENT_PORT, Broker, unique

MANAGEMENT = {"URL": f"http://127.0.0.1:{MANAGEMENT_PORT}", "USER": "guest", "PASSWORD": "guest"}


def rabbitbus_settings(**extra: Any) -> dict[str, Any]:
    return {**django_settings.RABBITBUS, **extra}


@dataclass
class Shop:
    """An exchange, a work queue bound to it, and the work queue's DLQ."""

    exchange: str
    queue: str

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    def queues_setting(self) -> dict[str, Any]:
        return {self.queue: {"TYPE": "classic"}, self.dlq: {"TYPE": "classic"}}


@contextlib.contextmanager
def shop_topology(broker: Broker, **extra: Any) -> Iterator[Shop]:
    """Declare the shop's entities in the test vhost and make rabbitbus know them."""
    shop = Shop(unique("mon.x"), unique("mon.q"))
    with broker.channel() as channel:
        channel.exchange_declare(shop.exchange, "topic", durable=True)
        channel.queue_declare(shop.queue, durable=True)
        channel.queue_bind(shop.queue, shop.exchange, "order.#")
        channel.queue_declare(shop.dlq, durable=True)
    try:
        with override_settings(RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), **extra)):
            yield shop
    finally:
        with broker.channel() as channel:
            channel.queue_delete(shop.queue)
            channel.queue_delete(shop.dlq)
            channel.exchange_delete(shop.exchange)


def dead_letter(broker: Broker, shop: Shop, message_id: str, body: bytes = b'{"n":1}') -> None:
    """Put a message in the DLQ the way the rabbitbus worker does after its last attempt."""
    headers = {
        "x-rabbitbus-error-class": "ValueError",
        "x-rabbitbus-error": "bad <order>",
        "x-rabbitbus-attempts": 3,
        "x-rabbitbus-original-exchange": shop.exchange,
        "x-rabbitbus-original-routing-key": "order.placed",
    }
    properties = pika.BasicProperties(
        message_id=message_id, headers=headers, content_type="application/json", delivery_mode=2
    )
    with broker.channel() as channel:
        channel.basic_publish("", shop.dlq, body, properties)


def get_all(broker: Broker, queue: str) -> list[tuple[Any, bytes]]:
    """Consume (ack) everything in ``queue``: ``[(properties, body)]``."""
    taken = []
    with broker.channel() as channel:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties, body))
