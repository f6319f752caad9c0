"""Issue 13, point 3 and issue 14, point 5: every hostile or impossible input is refused in words.

Each input gives a 4xx with the form's error (the entered value kept), never
a 500, and creates no order.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client

from demo_shop.orders.forms import MAX_QUANTITY
from demo_shop.orders.models import Order
from tests.rpc_support import serving

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"email": "ok@example.com", "card_number": "4242 4242 4242 4242"}


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


@pytest.fixture
def priced() -> Iterator[None]:
    """The catalog service, answering the checkout's quotes."""
    with serving("catalog.quote"):
        yield


def cart_of(client: Client) -> dict[str, int]:
    return dict(client.session.get("cart", {}))


@pytest.mark.parametrize(
    "quantity", ["abc", "1e3", "9" * 5000, str(10**10), "-5", "0", str(10**9), "2.5"]
)
def test_a_bad_quantity_is_a_form_error_with_the_value_kept(quantity: str) -> None:
    shopper = Client()
    response = shopper.post("/cart/add/RB-MUG/", {"quantity": quantity})
    assert response.status_code == 400
    assert b"quantity-error" in response.content
    if len(quantity) < 100:
        assert f'value="{quantity}"'.encode() in response.content
    assert cart_of(shopper) == {}


def test_the_cart_holds_at_most_the_maximum_of_one_product() -> None:
    shopper = Client()
    assert shopper.post("/cart/add/RB-MUG/", {"quantity": MAX_QUANTITY}).status_code == 302
    response = shopper.post("/cart/add/RB-MUG/", {"quantity": 1})
    assert response.status_code == 400
    assert f"At most {MAX_QUANTITY} per order".encode() in response.content
    assert cart_of(shopper) == {"RB-MUG": MAX_QUANTITY}


def test_no_quantity_means_one() -> None:
    shopper = Client()
    assert shopper.post("/cart/add/RB-MUG/").status_code == 302
    assert cart_of(shopper) == {"RB-MUG": 1}


@pytest.mark.parametrize("sku", ["RB-NOPE", "X" * 5000, "<script>"])
def test_an_unknown_product_is_404(sku: str) -> None:
    shopper = Client()
    assert shopper.post(f"/cart/add/{sku}/", {"quantity": 1}).status_code == 404
    assert cart_of(shopper) == {}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("card_number", "4" * 33, b"Ensure this value has at most 32 characters"),
        ("card_number", "4242", b"A card number has 12 to 19 digits."),
        ("card_number", "4242-abcd-4242-4242", b"A card number has 12 to 19 digits."),
        ("card_number", "", b"This field is required."),
        ("email", "a" * 290 + "@example.com", b"Ensure this value has at most 254 characters"),
        ("email", "not-an-email", b"Enter a valid email address."),
        ("email", "", b"This field is required."),
    ],
)
@pytest.mark.usefixtures("priced")
def test_a_bad_checkout_field_is_a_form_error_and_no_order(
    field: str, value: str, error: bytes
) -> None:
    shopper = Client()
    shopper.post("/cart/add/RB-MUG/", {"quantity": 2})
    response = shopper.post("/checkout/", {**GOOD, field: value})
    assert response.status_code == 400
    assert error in response.content
    assert f'value="{value}"'.encode() in response.content  # kept for correcting
    assert not Order.objects.exists()
    assert cart_of(shopper) == {"RB-MUG": 2}


@pytest.mark.usefixtures("priced")
def test_checkout_refuses_what_the_quote_flagged_saying_how_many_are_left() -> None:
    shopper = Client()
    shopper.post("/cart/add/RB-RARE/", {"quantity": 2})
    response = shopper.post("/checkout/", GOOD)
    assert response.status_code == 409
    assert b"Not enough Signed first edition: only 1 left." in response.content
    assert not Order.objects.exists()


@pytest.mark.usefixtures("priced")
def test_a_product_the_catalog_no_longer_sells_is_a_message_not_a_500() -> None:
    shopper = Client()
    session = shopper.session
    session["cart"] = {"RB-GONE": 1}  # put in the cart before it left the catalog
    session.save()
    pages = (shopper.get("/cart/"), shopper.get("/checkout/"), shopper.post("/checkout/", GOOD))
    for response in pages:
        assert response.status_code == 409
        assert b"the shop does not sell (Unknown product(s): RB-GONE)" in response.content
    assert not Order.objects.exists()
    assert shopper.post("/cart/empty/").status_code == 302
    assert cart_of(shopper) == {}
