"""``manage.py shop_seed``: put a few products on the shelves (idempotent).

It also puts the carrot crate back on stocktake: ordering it shows a dead
letter on purpose (docs/dead-letter-demo.md).
"""

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand

from demo_shop.catalog.models import Product

PRODUCTS = [
    ("RB-MUG", "Rabbit mug", Decimal("12.50"), 1000),
    ("RB-TEE", "Rabbit T-shirt", Decimal("24.00"), 1000),
    ("RB-HOOD", "Rabbit hoodie", Decimal("49.90"), 1000),
    ("RB-SOCK", "Queue socks", Decimal("7.99"), 1000),
    ("RB-RARE", "Signed first edition", Decimal("199.00"), 1),
    ("RB-CRATE", "Carrot crate (on stocktake)", Decimal("9.99"), 1000),
]
#: The product whose orders are dead-lettered until its stocktake is over (the demo's DLQ).
STOCKTAKE_SKU = "RB-CRATE"


class Command(BaseCommand):
    help = "Create the demo products, or restock them."

    def handle(self, *args: Any, **options: Any) -> None:
        for sku, name, price, stock in PRODUCTS:
            Product.objects.update_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "price": price,
                    "stock": stock,
                    "stocktake": sku == STOCKTAKE_SKU,
                },
            )
        self.stdout.write(self.style.SUCCESS(f"{len(PRODUCTS)} products on the shelves."))
