"""The order saga: what the orders service does with each outcome it hears.

Inventory and billing work in parallel on ``order.placed``, so their answers
arrive in either order, and possibly after the order was cancelled. The saga
records each answer on the order and moves it forward only in this order::

    placed -> reserved (stock) -> paid (stock and payment) -> confirmed (invoice issued)

A negative answer cancels the order and compensates whatever the other side
did: a reservation is released, a capture refunded, also when the positive
answer arrives after the cancellation. Confirming an order enqueues its invoice
email, a ``django.tasks`` task (:mod:`demo_shop.billing.tasks`). Each function runs inside the
consumer's transaction with the order row locked; the messages it emits go
through the outbox in that same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from demo_shop import bus
from demo_shop.billing.tasks import email_invoice
from demo_shop.orders.models import Order

logger = logging.getLogger("demo_shop.orders")

Status = Order.Status


def stock_reserved(order: Order) -> str:
    order.stock_state = Order.StockState.RESERVED
    if order.status == Status.PLACED:
        order.move_to(Status.RESERVED, also=["stock_state"])
        return _charge_complete(order) or "order reserved; waiting for the payment"
    order.save(update_fields=["stock_state"])
    if order.status == Status.CANCELLED:
        bus.emit("stock.release", order.pk)
        return "order already cancelled: asked inventory to release the stock"
    return f"order already {order.status}"


def payment_captured(order: Order) -> str:
    order.payment_state = Order.PaymentState.CAPTURED
    paid = _charge_complete(order, also=["payment_state"])
    if paid:
        return paid
    order.save(update_fields=["payment_state"])
    if order.status == Status.CANCELLED:
        bus.emit("payment.refund", order.pk)
        return "order already cancelled: asked billing to refund"
    return "payment noted; waiting for the stock"


def stock_rejected(order: Order, reason: str) -> str:
    order.stock_state = Order.StockState.REJECTED
    order.save(update_fields=["stock_state"])
    return cancel(order, reason or "Out of stock.")


def payment_declined(order: Order, reason: str) -> str:
    order.payment_state = Order.PaymentState.DECLINED
    order.save(update_fields=["payment_state"])
    return cancel(order, reason or "Payment declined.")


def invoice_issued(order: Order) -> str:
    """Confirm the order and enqueue its invoice email (a task, sent when this commits)."""
    if order.status == Status.PAID:
        order.invoice_task_id = email_invoice.enqueue(order.pk).id
        order.move_to(Status.CONFIRMED, also=["invoice_task_id"])
        return "order confirmed; invoice email enqueued"
    return f"order {order.status}: nothing to do"


def cancel(order: Order, reason: str) -> str:
    """Cancel the order and undo what inventory and billing already did; returns what it did."""
    if order.status == Status.CANCELLED:
        return "order already cancelled"
    if order.status in (Status.PAID, Status.CONFIRMED):
        # Both sides said yes before: a late "no" contradicts them. Keep the order.
        logger.warning("Order %s is %s; ignoring cancellation: %s", order.pk, order.status, reason)
        return f"order already {order.status}: cancellation ignored"
    order.move_to(Status.CANCELLED, reason)
    undo = []
    if order.stock_state == Order.StockState.RESERVED:
        bus.emit("stock.release", order.pk)
        undo.append("asked inventory to release the stock")
    if order.payment_state == Order.PaymentState.CAPTURED:
        bus.emit("payment.refund", order.pk)
        undo.append("asked billing to refund")
    return "; ".join([f"order cancelled ({reason})", *undo])


def _charge_complete(order: Order, also: Sequence[str] = ()) -> str:
    """Stock reserved and payment captured: the order is paid; billing issues the invoice.

    Returns what happened, or "" while one of the two is still missing (``also``: fields
    set on the order that the move to paid saves with it; else the caller saves them).
    """
    if order.status == Status.RESERVED and order.payment_state == Order.PaymentState.CAPTURED:
        order.move_to(Status.PAID, also=also)
        bus.emit("order.paid", order.pk, amount=str(order.total), email=order.email)
        return "order paid; asked billing for the invoice"
    return ""


#: Routing key -> what to do (returns the outcome in words), for the orders consumer.
HANDLERS = {
    "stock.reserved": lambda order, body: stock_reserved(order),
    "stock.rejected": lambda order, body: stock_rejected(order, body.get("reason", "")),
    "payment.captured": lambda order, body: payment_captured(order),
    "payment.declined": lambda order, body: payment_declined(order, body.get("reason", "")),
    "invoice.issued": lambda order, body: invoice_issued(order),
}
