"""The demo's dead letter on purpose: documented where a user looks, and how inventory fails it.

The whole story (dead-lettered, read in the admin, fixed, replayed, confirmed) runs
with the shop's real workers in ``test_flow.py``.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from demo_shop.catalog.management.commands.shop_seed import STOCKTAKE_SKU
from demo_shop.catalog.models import Product
from demo_shop.inventory import stock
from demo_shop.inventory.models import Reservation
from demo_shop.orders.services import place_order
from tests.workers import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def crate() -> Product:
    call_command("shop_seed", stdout=io.StringIO())
    return Product.objects.get(sku=STOCKTAKE_SKU)


def test_seeding_puts_the_crate_on_stocktake_again(crate: Product) -> None:
    Product.objects.filter(pk=crate.pk).update(stocktake=False)
    call_command("shop_seed", stdout=io.StringIO())
    assert list(Product.objects.filter(stocktake=True).values_list("sku", flat=True)) == [
        STOCKTAKE_SKU
    ]


def test_inventory_fails_an_order_for_it_until_the_stocktake_is_over(crate: Product) -> None:
    order = place_order("crate@example.com", "4242", {STOCKTAKE_SKU: 1})
    lines = [{"sku": STOCKTAKE_SKU, "quantity": 1}]
    with pytest.raises(stock.StocktakeInProgress, match="Untick 'Stocktake'"):
        stock.reserve(order.pk, lines)
    assert not Reservation.objects.exists()
    Product.objects.filter(pk=crate.pk).update(stocktake=False)
    assert stock.reserve(order.pk, lines).status == Reservation.Status.RESERVED


def test_the_shop_page_and_the_demo_banner_tell_how(crate: Product) -> None:
    page = Client().get("/").content.decode()
    assert 'id="dead-letter-demo"' in page and "inventory.orders.dlq" in page
    row = page.split(crate.name, 1)[1].split("</tr>", 1)[0]
    assert "On stocktake" in row
    banner = (ROOT / "scripts" / "demo.sh").read_text()
    assert f'order the "{crate.name}"' in banner and "inventory.orders.dlq" in banner
