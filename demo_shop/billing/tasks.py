"""The billing service's background task: emailing an invoice, with ``django.tasks``.

The saga enqueues it when it confirms an order, in the same transaction (published
when that commits, never for a rolled-back one); the billing worker runs it
(``rabbit_consume billing --tasks``) and stores its result, which the order page shows.
"""

from __future__ import annotations

from django.db import transaction

from demo_shop.billing import payments
from rabbitbus.tasks.compat import task  # django.tasks.task on Django 6, the backport's on 5.2


@task()
def email_invoice(order_id: int) -> dict[str, object]:
    """Email order ``order_id``'s invoice (once); returns whom it went to."""
    with transaction.atomic():
        invoice = payments.email_invoice(order_id)
    return {"invoice": invoice.pk, "to": invoice.order.email, "amount": str(invoice.amount)}
