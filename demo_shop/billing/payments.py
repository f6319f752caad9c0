"""Charging orders, refunding them, issuing their invoices and emailing them."""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import timezone

from demo_shop.billing import gateway
from demo_shop.billing.models import Invoice, Payment
from demo_shop.orders.models import Order


def charge(order_id: int) -> Payment:
    """Charge the order's card once; returns the payment (captured or declined)."""
    existing = Payment.objects.filter(order_id=order_id).first()
    if existing is not None:
        return existing
    order = Order.objects.get(pk=order_id)
    amount = order.total
    try:
        reference = gateway.charge(order.card_number, amount)
    except gateway.Declined as exc:
        return Payment.objects.create(
            order_id=order_id, amount=amount, status=Payment.Status.DECLINED, reason=str(exc)
        )
    return Payment.objects.create(
        order_id=order_id, amount=amount, status=Payment.Status.CAPTURED, reference=reference
    )


def refund(order_id: int) -> bool:
    """Refund a captured payment; False if there is nothing to refund."""
    payment = Payment.objects.select_for_update().filter(order_id=order_id).first()
    if payment is None or payment.status != Payment.Status.CAPTURED:
        return False
    gateway.refund(payment.reference)
    payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["status"])
    return True


def issue_invoice(order_id: int) -> Invoice:
    """Create the order's invoice, once; emailing it is a task (:mod:`demo_shop.billing.tasks`)."""
    order = Order.objects.get(pk=order_id)
    invoice, _ = Invoice.objects.get_or_create(order=order, defaults={"amount": order.total})
    return invoice


def email_invoice(order_id: int) -> Invoice:
    """Email the order's invoice, once (a task run again after a crash sends no second one)."""
    invoice = Invoice.objects.select_for_update().select_related("order").get(order_id=order_id)
    if invoice.emailed_at is None:
        send_mail(
            f"Your invoice for order #{order_id}",
            f"Thank you for your order #{order_id}.\nAmount charged: {invoice.amount} EUR.\n",
            None,
            [invoice.order.email],
        )
        invoice.emailed_at = timezone.now()
        invoice.save(update_fields=["emailed_at"])
    return invoice
