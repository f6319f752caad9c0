"""The demo shop end to end: real workers, relay and RPC server as processes, on PostgreSQL.

Run with ``pytest --ds=tests.settings_pg -m postgres`` (``scripts/test.sh`` does).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connections as db_connections
from django.test import Client
from django.urls import reverse

from demo_shop.billing.models import Invoice, Payment
from demo_shop.catalog.models import Product
from demo_shop.inventory.models import Reservation
from demo_shop.orders import timeline
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus import outbox, publishing
from rabbitbus.models import OutboxMessage, TaskRecord
from tests.shop_services import ShopServices

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000002"
STOCK = 1000


def checkout(cart: dict[str, int], card: str = GOOD_CARD, email: str = "") -> int:
    """Fill a cart and check out through the real views; returns the order id."""
    client = Client()
    for sku, quantity in cart.items():
        client.post(f"/cart/add/{sku}/", {"quantity": quantity})
    email = email or f"{uuid.uuid4().hex[:8]}@example.com"
    response = client.post("/checkout/", {"email": email, "card_number": card})
    assert response.status_code == 302, response.content[:500]
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


def wait_final(shop: ShopServices, *pks: int, timeout: float = 90) -> dict[int, Order]:
    """Wait until every order is confirmed or cancelled; returns them by id."""

    def done() -> bool:
        return Order.objects.filter(pk__in=pks, status__in=Order.FINAL).count() == len(pks)

    if not shop.broker.wait_for(done, timeout=timeout, interval=0.1):
        stuck = Counter(Order.objects.filter(pk__in=pks).values_list("status", flat=True))
        logs = "\n".join(f"== {name}\n{shop.log(name)}" for name in shop.processes)
        pytest.fail(f"orders not final after {timeout}s: {dict(stuck)}\n{logs}")
    return Order.objects.in_bulk(list(pks))


def wait_invoice_emails(shop: ShopServices, *orders: Order, timeout: float = 90) -> None:
    if not shop.wait_invoice_tasks([order.pk for order in orders], timeout):
        pytest.fail(f"invoice emails not sent after {timeout}s:\n{shop.log('billing')}")


def stock(sku: str) -> int:
    return Product.objects.get(sku=sku).stock


def history(order: Order) -> list[str]:
    return [change.status for change in order.history.all()]


def test_an_order_is_confirmed_with_stock_taken_and_one_invoice_emailed(
    shop: ShopServices,
) -> None:
    client = Client()
    client.post("/cart/add/RB-MUG/", {"quantity": 2})
    quote_page = client.get("/checkout/")  # priced by the RPC server process
    assert quote_page.status_code == 200 and b"25.00" in quote_page.content
    client.post("/checkout/", {"email": "ok@example.com", "card_number": GOOD_CARD})
    (order,) = wait_final(shop, Order.objects.get().pk).values()
    assert history(order) == ["placed", "reserved", "paid", "confirmed"]
    assert stock("RB-MUG") == STOCK - 2
    assert Invoice.objects.get(order=order).amount == order.total
    wait_invoice_emails(shop, order)
    assert shop.emails() == [("ok@example.com", f"Your invoice for order #{order.pk}")]
    task = Order.objects.get(pk=order.pk).invoice_task_id
    result = TaskRecord.objects.get(pk=task)
    assert (result.status, result.return_value["to"]) == ("SUCCESSFUL", "ok@example.com")
    assert Invoice.objects.get(order=order).emailed_at is not None
    page = client.get(reverse("order", args=[order.pk])).content.decode()
    shown = page.split('id="invoice-email">')[1].split("</p>")[0]
    finished = timeline.clock(result.finished_at)
    assert "SUCCESSFUL" in shown and finished in shown and "sent to ok@example.com" in shown
    assert Counter(story(order)) == Counter(
        [
            ("order.placed", "checkout"),
            ("order.placed", "inventory"),
            ("order.placed", "billing"),
            ("stock.reserved", "orders"),
            ("payment.captured", "orders"),
            ("order.paid", "billing"),
            ("invoice.issued", "orders"),
        ]
    )
    assert story(order)[-1] == ("invoice.issued", "orders")


def story(order: Order) -> list[tuple[str, str]]:
    """The order's timeline as (message, service), in time order."""
    return [(entry.message, entry.service) for entry in order.timeline.all()]


def test_out_of_stock_cancels_without_an_invoice_and_refunds(shop: ShopServices) -> None:
    # Checkout refuses what the quote flags short; the stock can still run out after the quote.
    pk = place_order("late@example.com", GOOD_CARD, {"RB-RARE": 2, "RB-TEE": 1}).pk
    order = wait_final(shop, pk)[pk]
    reason = "Not enough RB-RARE: only 1 left, 2 wanted."
    assert (order.status, order.reason) == ("cancelled", reason)
    assert (stock("RB-RARE"), stock("RB-TEE")) == (1, STOCK)  # nothing half-taken
    assert not Invoice.objects.filter(order=order).exists()
    # Billing may charge before it hears of the cancellation: then it refunds.
    assert shop.broker.wait_for(lambda: _payment(pk) in ("refunded", None), timeout=30)


def _payment(pk: int) -> str | None:
    payment = Payment.objects.filter(order_id=pk).first()
    return payment.status if payment else None


def test_a_declined_card_cancels_and_releases_the_stock(shop: ShopServices) -> None:
    pk = checkout({"RB-HOOD": 3}, card=DECLINED_CARD)
    order = wait_final(shop, pk)[pk]
    assert (order.status, order.reason) == ("cancelled", "The card was declined.")
    assert Payment.objects.get(order=order).status == "declined"
    released = shop.broker.wait_for(
        lambda: Reservation.objects.get(order=order).status == "released", timeout=30
    )
    assert released and stock("RB-HOOD") == STOCK
    assert not Invoice.objects.filter(order=order).exists()
    undone = order.timeline.get(message="stock.release")
    assert (undone.service, undone.outcome) == ("inventory", "put 3 x RB-HOOD back in stock")
    assert timeline.settled(Order.objects.get(pk=pk))


def test_order_placed_delivered_twice_reserves_and_bills_once(shop: ShopServices) -> None:
    pk = checkout({"RB-SOCK": 4})
    wait_final(shop, pk)
    row = OutboxMessage.objects.get(routing_key="order.placed", aggregate=f"orders.order:{pk}")
    original = outbox.envelope_of(row)
    fresh_id = dataclasses.replace(original, message_id=uuid.uuid4().hex)
    publishing.publish_envelopes([original, fresh_id]).raise_first()
    # Queues are FIFO: once a later order is final, both copies were handled.
    later = checkout({"RB-MUG": 1})
    assert wait_final(shop, later)[later].status == "confirmed"
    assert Reservation.objects.filter(order_id=pk).count() == 1
    assert Payment.objects.filter(order_id=pk).count() == 1
    assert Invoice.objects.filter(order_id=pk).count() == 1
    assert stock("RB-SOCK") == STOCK - 4
    wait_invoice_emails(shop, Order.objects.get(pk=pk))
    assert [to for to, _ in shop.emails()].count(Order.objects.get(pk=pk).email) == 1


def test_restarts_and_closed_connections_mid_flow_lose_no_order(shop: ShopServices) -> None:
    placed: list[int] = []
    carts = [({"RB-MUG": 1, "RB-SOCK": 2}, GOOD_CARD), ({"RB-TEE": 1}, DECLINED_CARD)]
    shopper = threading.Thread(target=_place_many, args=(placed, carts * 20), daemon=True)
    shopper.start()
    for chaos in (
        lambda: shop.restart("billing", signal.SIGKILL),
        shop.broker.close_all_connections,
        lambda: shop.restart("inventory", signal.SIGTERM),
        lambda: shop.restart("relay", signal.SIGKILL),
        lambda: shop.restart("orders", signal.SIGTERM),
        shop.broker.close_all_connections,
    ):
        time.sleep(0.3)
        chaos()
    shopper.join(120)
    assert len(placed) == 40
    orders = wait_final(shop, *placed, timeout=180)
    confirmed = [o for o in orders.values() if o.status == "confirmed"]
    assert len(confirmed) == 20 and all(o.card_number == GOOD_CARD for o in confirmed)
    assert Invoice.objects.filter(order__in=confirmed).count() == 20
    wait_invoice_emails(shop, *confirmed)
    sent_to = {to for to, _ in shop.emails()}
    assert {o.email for o in confirmed} <= sent_to  # a SIGKILL may repeat one, never drop one
    # Every declined order's reservation is given back: stock counts only confirmed orders.
    released = shop.broker.wait_for(lambda: stock("RB-TEE") == STOCK, timeout=60)
    assert released, Counter(Reservation.objects.values_list("status", flat=True))
    assert (stock("RB-MUG"), stock("RB-SOCK")) == (STOCK - 20, STOCK - 40)


def _place_many(placed: list[int], carts: list[tuple[dict[str, int], str]]) -> None:
    try:
        for cart, card in carts:
            placed.append(checkout(cart, card))
            time.sleep(0.05)
    finally:
        db_connections.close_all()


def test_a_dead_letter_on_purpose_is_read_fixed_and_replayed_to_a_confirmed_order(
    shop: ShopServices,
) -> None:
    """The demo's documented dead letter: a product on stocktake, as a user meets it."""
    dlq = "inventory.orders.dlq"
    pk = checkout({"RB-CRATE": 1})
    assert shop.broker.wait_for(lambda: shop.broker.queue_depth(dlq) == 1, timeout=60), shop.log(
        "inventory"
    )
    assert Order.objects.get(pk=pk).status == "placed"  # waiting for its stock
    admin = Client()
    admin.force_login(User.objects.create_superuser("dl-admin", "dl@example.com", "pw"))
    page = admin.get(reverse("admin:rabbitbus_dashboard_dlq", args=[dlq])).content.decode()
    assert "StocktakeInProgress" in page and "RB-CRATE is on stocktake" in page
    crate = Product.objects.get(sku="RB-CRATE")
    fields = {"sku": crate.sku, "name": crate.name, "price": crate.price, "stock": crate.stock}
    fixed = admin.post(reverse("admin:catalog_product_change", args=[crate.pk]), fields)
    assert fixed.status_code == 302 and not Product.objects.get(sku="RB-CRATE").stocktake
    replay = reverse("admin:rabbitbus_dashboard_dlq_replay", args=[dlq])
    assert admin.post(replay, {"all": "1", "confirm": "yes"}).status_code == 302
    assert wait_final(shop, pk)[pk].status == "confirmed"
    assert shop.broker.queue_depth(dlq) == 0 and stock("RB-CRATE") == STOCK - 1
    assert ("order.placed", "inventory") in story(Order.objects.get(pk=pk))
