"""The orders service on the bus: the checkout bridge, status events, the saga consumer."""

from __future__ import annotations

from typing import Any

import rabbitbus
from demo_shop import bus
from demo_shop.orders import saga, timeline
from demo_shop.orders.models import Order, StatusChange, TimelineEntry
from demo_shop.orders.signals import order_placed
from rabbitbus import ReceivedMessage, Reject


def placed_payload(order: Order, event: str, **kwargs: Any) -> dict[str, Any]:
    lines = order.lines.select_related("product")
    return {
        "order_id": order.pk,
        "email": order.email,
        "total": str(order.total),
        "lines": [
            {"sku": line.product.sku, "quantity": line.quantity, "unit_price": str(line.unit_price)}
            for line in lines
        ],
    }


def status_payload(change: StatusChange, event: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "order_id": change.order_id,
        "status": change.status,
        "reason": change.reason,
        "at": change.at.isoformat(),
    }


# Checkout: the order-placed message is written to the outbox in the order's transaction.
rabbitbus.bridge(
    signal=order_placed,
    exchange=bus.EXCHANGE,
    routing_key="order.placed",
    payload=placed_payload,
    mode="outbox",
    type="order.placed",
)


def timeline_payload(entry: TimelineEntry, event: str, **kwargs: Any) -> dict[str, Any]:
    return {"order_id": entry.order_id, "message": entry.message, "at": entry.at.isoformat()}


def _announce(model: type[StatusChange | TimelineEntry], payload: Any, kind: str) -> None:
    """Announce each new ``model`` row on ``order.status.<id>``: the order page's live feed.

    A transient event nobody may be listening to; the page reads the order afresh on each.
    """
    rabbitbus.bridge(
        model,
        exchange=bus.EXCHANGE,
        routing_key=lambda instance, event: f"order.status.{instance.order_id}",
        events=["created"],
        payload=payload,
        type=kind,
        options={"mandatory": False, "persistent": False},
    )


_announce(StatusChange, status_payload, "order.status")
_announce(TimelineEntry, timeline_payload, "order.timeline")


@rabbitbus.consumer(
    name="orders",
    queue="orders.saga",
    bindings=[(bus.EXCHANGE, key) for key in saga.HANDLERS],
    **bus.CONSUMER_OPTIONS,
)
@timeline.records("orders")
def on_outcome(message: ReceivedMessage) -> str:
    """Inventory and billing answered: move the order on (see :mod:`demo_shop.orders.saga`)."""
    react = saga.HANDLERS.get(message.routing_key)
    if react is None:
        raise Reject(f"orders has no handler for {message.routing_key!r}")
    order = Order.objects.select_for_update().get(pk=message.body["order_id"])
    return str(react(order, message.body))
