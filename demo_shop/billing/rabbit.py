"""The billing service: charges placed orders, refunds cancelled ones, issues invoices.

The invoice email is a task the saga enqueues once the order is confirmed
(:mod:`demo_shop.billing.tasks`); this service's worker runs it (``--tasks``).
"""

from __future__ import annotations

from demo_shop import bus
from demo_shop.billing import payments
from demo_shop.billing.models import Payment
from demo_shop.orders import timeline
from rabbitbus import ReceivedMessage, Reject, consumer


@consumer(
    name="billing",
    queue="billing.orders",
    bindings=[(bus.EXCHANGE, key) for key in ("order.placed", "order.paid", "payment.refund")],
    **bus.CONSUMER_OPTIONS,
)
@timeline.records("billing")
def on_order(message: ReceivedMessage) -> str:
    """Charge, invoice or refund an order; returns what happened, for the timeline."""
    order_id = message.body["order_id"]
    if message.routing_key == "order.placed":
        payment = payments.charge(order_id)
        if payment.status == Payment.Status.DECLINED:
            bus.emit("payment.declined", order_id, reason=payment.reason)
            return f"declined: {payment.reason}"
        bus.emit("payment.captured", order_id, amount=str(payment.amount))
        return f"captured {payment.amount} EUR ({payment.reference})"
    if message.routing_key == "order.paid":
        invoice = payments.issue_invoice(order_id)
        bus.emit("invoice.issued", order_id, invoice_id=invoice.pk)
        return f"invoice #{invoice.pk} for {invoice.amount} EUR issued"
    if message.routing_key == "payment.refund":
        refunded = payments.refund(order_id)
        return "refunded the captured payment" if refunded else "nothing to refund"
    raise Reject(f"billing has no handler for {message.routing_key!r}")
