"""Placing orders: the one write the storefront makes."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from demo_shop.catalog.models import Product
from demo_shop.orders import timeline
from demo_shop.orders.models import Order
from demo_shop.orders.signals import order_placed


class EmptyCart(ValueError):
    """An order needs at least one line."""


def place_order(email: str, card_number: str, cart: Mapping[str, int]) -> Order:
    """Create an order with its lines at today's prices, in one transaction.

    Stock is not touched here: the inventory worker reserves it, on the
    ``order.placed`` message the checkout bridge writes to the outbox in this
    same transaction (see ``orders/rabbit.py``). Raises
    :class:`EmptyCart` when ``cart`` (sku -> quantity) has nothing to buy.
    """
    wanted = {sku: quantity for sku, quantity in cart.items() if quantity > 0}
    products = Product.objects.in_bulk(list(wanted), field_name="sku")
    if not products:
        raise EmptyCart("The cart is empty.")
    with transaction.atomic():
        order = Order.objects.create(email=email, card_number=card_number)
        for sku, product in products.items():
            order.lines.create(product=product, quantity=wanted[sku], unit_price=product.price)
        order.history.create(status=order.status)
        order_placed.send(sender=Order, instance=order)
        timeline.record(order.pk, "order.placed", "checkout", "sent to inventory and billing")
    return order
