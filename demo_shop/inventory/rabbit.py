"""The inventory service: reserves stock for placed orders, releases it for cancelled ones."""

from __future__ import annotations

from demo_shop import bus
from demo_shop.inventory import stock
from demo_shop.inventory.models import Reservation
from rabbitbus import ReceivedMessage, Reject, consumer


@consumer(
    name="inventory",
    queue="inventory.orders",
    bindings=[(bus.EXCHANGE, "order.placed"), (bus.EXCHANGE, "stock.release")],
    **bus.CONSUMER_OPTIONS,
)
def on_order(message: ReceivedMessage) -> None:
    order_id = message.body["order_id"]
    if message.routing_key == "stock.release":
        stock.release(order_id)
    elif message.routing_key == "order.placed":
        reservation = stock.reserve(order_id, message.body["lines"])
        if reservation.status == Reservation.Status.REJECTED:
            bus.emit("stock.rejected", order_id, reason=reservation.reason)
        else:
            bus.emit("stock.reserved", order_id)
    else:
        raise Reject(f"inventory has no handler for {message.routing_key!r}")
