"""Issue 14, point 5: a rejected reservation says how many were left, not "out of stock"."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from demo_shop.catalog.models import Product
from demo_shop.inventory import stock
from demo_shop.orders.services import place_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


def reserve_two_rare() -> str:
    order = place_order("rare@example.com", "4242424242424242", {"RB-RARE": 2})
    reservation = stock.reserve(order.pk, [{"sku": "RB-RARE", "quantity": 2}])
    assert reservation.status == "rejected"
    return reservation.reason


def test_some_left_says_how_many() -> None:
    assert reserve_two_rare() == "Not enough RB-RARE: only 1 left, 2 wanted."
    assert Product.objects.get(sku="RB-RARE").stock == 1  # nothing taken


def test_none_left_says_out_of_stock() -> None:
    Product.objects.filter(sku="RB-RARE").update(stock=0)
    assert reserve_two_rare() == "RB-RARE is out of stock."
