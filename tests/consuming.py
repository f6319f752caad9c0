"""A test consumer: drain a queue and keep what arrived, in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.broker import Broker


@dataclass
class Delivered:
    routing_key: str
    message_id: str
    payload: Any
    headers: dict[str, Any]
    type: str | None
    properties: Any = None


def drain(broker: Broker, queue: str, idle: float = 0.5) -> list[Delivered]:
    """Everything in ``queue`` until it stays empty for ``idle`` seconds (acked)."""
    delivered = []
    with broker.channel() as channel:
        channel.basic_qos(prefetch_count=1000)
        for method, properties, body in channel.consume(queue, inactivity_timeout=idle):
            if method is None:
                break
            delivered.append(
                Delivered(
                    method.routing_key,
                    properties.message_id,
                    json.loads(body),
                    properties.headers or {},
                    properties.type,
                    properties,
                )
            )
            channel.basic_ack(method.delivery_tag)
        channel.cancel()
    return delivered


def drain_until(broker: Broker, queue: str, count: int, timeout: float = 30.0) -> list[Delivered]:
    """Drain until at least ``count`` messages arrived or ``timeout`` passed."""
    import time

    delivered: list[Delivered] = []
    deadline = time.monotonic() + timeout
    while len(delivered) < count and time.monotonic() < deadline:
        delivered += drain(broker, queue, idle=0.2)
    return delivered
