"""``manage.py shop_seed``: put a few products on the shelves (idempotent)."""

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
]


class Command(BaseCommand):
    help = "Create the demo products, or restock them."

    def handle(self, *args: Any, **options: Any) -> None:
        for sku, name, price, stock in PRODUCTS:
            Product.objects.update_or_create(
                sku=sku, defaults={"name": name, "price": price, "stock": stock}
            )
        self.stdout.write(self.style.SUCCESS(f"{len(PRODUCTS)} products on the shelves."))
