"""Products for sale, with their stock."""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    #: The demo's dead letter on purpose (see docs/dead-letter-demo.md).
    stocktake = models.BooleanField(
        default=False,
        help_text="Demo: while ticked, the inventory cannot reserve this product: an order "
        "for it fails, is retried, then dead-lettered to inventory.orders.dlq. Untick it, then "
        "replay the dead letter from the RabbitMQ page of the admin.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
