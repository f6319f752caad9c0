"""Models the tests use as a user's app would: a thing to save, and effects to count."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    number = models.CharField(max_length=32)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=32, default="placed")

    def __str__(self) -> str:
        return self.number


class Effect(models.Model):
    """One row per side effect a test handler applied (to count duplicates)."""

    consumer = models.CharField(max_length=200)
    message_id = models.CharField(max_length=255)
    value = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"
