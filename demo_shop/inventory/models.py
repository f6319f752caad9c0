"""Stock reservations made for orders."""

from __future__ import annotations

from django.db import models


class Reservation(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved"
        REJECTED = "rejected"
        RELEASED = "released"

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESERVED)
    lines = models.JSONField(default=list, help_text="[{sku, quantity}]")
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Reservation for {self.order}"
