"""The demo shop's pages through Django's test client (no workers needed)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from demo_shop.orders.models import Order

pytestmark = pytest.mark.django_db

FORM = {"email": "a@example.com", "card_number": "4242424242424242"}


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


def test_cart_to_checkout_places_an_order(client: Client) -> None:
    client.post("/cart/add/RB-MUG/", {"quantity": 2})
    client.post("/cart/add/RB-SOCK/", {"quantity": 1})
    response = client.post("/checkout/", FORM)
    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.pk}/"
    assert sorted((line.product.sku, line.quantity) for line in order.lines.all()) == [
        ("RB-MUG", 2),
        ("RB-SOCK", 1),
    ]
    assert str(order.total) == "32.99"
    assert [change.status for change in order.history.all()] == ["placed"]


def test_checkout_with_an_empty_cart_says_so(client: Client) -> None:
    response = client.post("/checkout/", FORM)
    assert response.status_code == 400
    assert b"The cart is empty." in response.content
    assert not Order.objects.exists()


def test_order_status_json(client: Client) -> None:
    client.post("/cart/add/RB-TEE/")
    client.post("/checkout/", FORM)
    order = Order.objects.get()
    data = client.get(f"/orders/{order.pk}/status.json").json()
    assert data["status"] == "placed"
    assert [entry["status"] for entry in data["history"]] == ["placed"]


@pytest.mark.parametrize("url", ["/", "/cart/", "/orders/"])
def test_pages_render(client: Client, url: str) -> None:
    assert client.get(url).status_code == 200
