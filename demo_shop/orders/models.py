"""Orders, their lines, the history of their status and the timeline of their messages."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import models, transaction


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed"
        RESERVED = "reserved"
        PAID = "paid"
        CONFIRMED = "confirmed"
        CANCELLED = "cancelled"

    class StockState(models.TextChoices):
        UNKNOWN = "", "not yet known"
        RESERVED = "reserved"
        REJECTED = "rejected"

    class PaymentState(models.TextChoices):
        UNKNOWN = "", "not yet known"
        CAPTURED = "captured"
        DECLINED = "declined"

    FINAL = (Status.CONFIRMED, Status.CANCELLED)

    email = models.EmailField()
    card_number = models.CharField(max_length=32, help_text="Demo only: 4000... fails payment.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    reason = models.CharField(max_length=200, blank=True, default="")
    # What the saga has heard from inventory and billing (see orders.saga).
    stock_state = models.CharField(
        max_length=16, choices=StockState.choices, blank=True, default=""
    )
    payment_state = models.CharField(
        max_length=16, choices=PaymentState.choices, blank=True, default=""
    )
    # The django.tasks task that emails the invoice, enqueued when the order is confirmed.
    invoice_task_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines.all()), Decimal("0"))

    def move_to(self, status: str, reason: str = "", *, also: Sequence[str] = ()) -> None:
        """Change status and record it, in one transaction (the caller's, if it has one: no
        savepoint). ``also``: other fields already set on the order, saved in the same UPDATE."""
        with transaction.atomic(savepoint=False):
            self.status, self.reason = status, reason
            self.save(update_fields=["status", "reason", *also])
            self.history.create(status=status, reason=reason)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


class StatusChange(models.Model):
    order = models.ForeignKey(Order, related_name="history", on_delete=models.CASCADE)
    status = models.CharField(max_length=16)
    reason = models.CharField(max_length=200, blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.order}: {self.status}"


class TimelineEntry(models.Model):
    """One message about an order, handled by one service: the order page's story.

    Each service writes its entry in its handler's transaction (see
    :mod:`demo_shop.orders.timeline`), so an entry exists exactly when the
    handling it describes was committed.
    """

    #: Messages that undo what a service did for an order the saga cancelled.
    COMPENSATIONS = ("stock.release", "payment.refund")

    order = models.ForeignKey(Order, related_name="timeline", on_delete=models.CASCADE)
    message = models.CharField(max_length=64, help_text="The routing key, e.g. order.placed.")
    service = models.CharField(max_length=32, help_text="Who handled (or sent) the message.")
    outcome = models.CharField(max_length=200)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.order}: {self.message} by {self.service}"

    @property
    def undoes(self) -> bool:
        """Whether this message is a compensation (it undoes earlier work)."""
        return self.message in self.COMPENSATIONS
