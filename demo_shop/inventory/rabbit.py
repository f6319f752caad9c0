"""The inventory service: reserves stock for placed orders, releases it for cancelled ones."""

from __future__ import annotations

from demo_shop import bus
from demo_shop.inventory import stock
from demo_shop.inventory.models import Reservation
from demo_shop.orders import timeline
from rabbitbus import ReceivedMessage, Reject, consumer


@consumer(
    name="inventory",
    queue="inventory.orders",
    bindings=[(bus.EXCHANGE, "order.placed"), (bus.EXCHANGE, "stock.release")],
    **bus.CONSUMER_OPTIONS,
)
@timeline.records("inventory")
def on_order(message: ReceivedMessage) -> str:
    """Reserve or release an order's stock; returns what happened, for the timeline."""
    order_id = message.body["order_id"]
    if message.routing_key == "stock.release":
        released = stock.release(order_id)
        return (
            f"put {stock.described(order_id)} back in stock" if released else "nothing to release"
        )
    if message.routing_key == "order.placed":
        reservation = stock.reserve(order_id, message.body["lines"])
        if reservation.status == Reservation.Status.REJECTED:
            bus.emit("stock.rejected", order_id, reason=reservation.reason)
            return f"refused: {reservation.reason}"
        bus.emit("stock.reserved", order_id)
        return f"reserved {stock.described(order_id)}"
    raise Reject(f"inventory has no handler for {message.routing_key!r}")
