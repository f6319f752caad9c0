"""Invoices and payments."""

from __future__ import annotations

from django.db import models


class Invoice(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Invoice {self.pk} for {self.order}"


class Payment(models.Model):
    class Status(models.TextChoices):
        CAPTURED = "captured"
        DECLINED = "declined"
        REFUNDED = "refunded"

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices)
    reference = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Payment for {self.order}: {self.status}"
