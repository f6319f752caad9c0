"""The catalog service over RPC: current prices and availability for a cart."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from demo_shop.catalog.models import Product
from rabbitbus import rpc


@rpc.register_error
class UnknownProduct(LookupError):
    """A cart names a product the catalog does not sell."""

    code = "unknown_product"


@rpc.procedure("catalog.quote")
def quote(cart: Mapping[str, int]) -> dict[str, Any]:
    """Price ``cart`` (sku -> quantity) at today's prices.

    Returns ``{"lines": [{sku, name, quantity, unit_price, subtotal, available, in_stock}],
    "total", "available"}``, amounts as decimal strings. Raises
    :class:`UnknownProduct` for a sku the catalog does not have.
    """
    wanted = {str(sku): int(quantity) for sku, quantity in cart.items() if int(quantity) > 0}
    products = Product.objects.in_bulk(list(wanted), field_name="sku")
    missing = sorted(set(wanted) - set(products))
    if missing:
        raise UnknownProduct(f"Unknown product(s): {', '.join(missing)}")
    lines = [_line(products[sku], quantity) for sku, quantity in sorted(wanted.items())]
    total = sum((Decimal(line["subtotal"]) for line in lines), Decimal("0"))
    return {
        "lines": lines,
        "total": str(total),
        "available": all(line["available"] for line in lines),
    }


def _line(product: Product, quantity: int) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "quantity": quantity,
        "unit_price": str(product.price),
        "subtotal": str(product.price * quantity),
        "available": product.stock >= quantity,
        "in_stock": product.stock,
    }
