"""Stock reservations made for orders."""

from __future__ import annotations

from django.db import models


class Reservation(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved"
        RELEASED = "released"

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESERVED)
    lines = models.JSONField(default=list, help_text="[{sku, quantity}]")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Reservation for {self.order}"
