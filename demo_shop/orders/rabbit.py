"""The orders service on the bus: the checkout bridge, status events, the saga consumer."""

from __future__ import annotations

from typing import Any

import rabbitbus
from demo_shop import bus
from demo_shop.orders import saga
from demo_shop.orders.models import Order, StatusChange
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

# Live status for order pages: a transient event nobody may be listening to.
rabbitbus.bridge(
    StatusChange,
    exchange=bus.EXCHANGE,
    routing_key=lambda change, event: f"order.status.{change.order_id}",
    events=["created"],
    payload=status_payload,
    type="order.status",
    options={"mandatory": False, "persistent": False},
)


@rabbitbus.consumer(
    name="orders",
    queue="orders.saga",
    bindings=[(bus.EXCHANGE, key) for key in saga.HANDLERS],
    **bus.CONSUMER_OPTIONS,
)
def on_outcome(message: ReceivedMessage) -> None:
    """Inventory and billing answered: move the order on (see :mod:`demo_shop.orders.saga`)."""
    react = saga.HANDLERS.get(message.routing_key)
    if react is None:
        raise Reject(f"orders has no handler for {message.routing_key!r}")
    order = Order.objects.select_for_update().get(pk=message.body["order_id"])
    react(order, message.body)
