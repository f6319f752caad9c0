"""The order's story: the timeline of its messages, when it is over, and the admin's one truth."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from demo_shop.billing.models import Invoice, Payment
from demo_shop.inventory.models import Reservation
from demo_shop.orders import timeline
from demo_shop.orders.live import order_state
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from tests.demo.visitors import owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def order() -> Order:
    call_command("shop_seed", stdout=io.StringIO())
    return place_order("story@example.com", "4242", {"RB-MUG": 2})


def test_checkout_starts_the_story_with_order_placed(order: Order) -> None:
    (entry,) = order_state(order)["timeline"]
    assert (entry["message"], entry["service"]) == ("order.placed", "checkout")
    assert entry["after"] >= 0 and entry["clock"].count(":") == 2 and not entry["undoes"]


def test_compensations_are_marked_as_undoing(order: Order) -> None:
    timeline.record(order.pk, "stock.release", "inventory", "put 2 x RB-MUG back in stock")
    undoing = [entry["message"] for entry in order_state(order)["timeline"] if entry["undoes"]]
    assert undoing == ["stock.release"]


def cancel_with(order: Order, stock: str, payment: str) -> None:
    order.stock_state, order.payment_state = stock, payment
    order.save()
    order.move_to(Order.Status.CANCELLED, "The card was declined.")


def test_a_cancelled_order_is_settled_only_once_each_compensation_was_handled(
    order: Order,
) -> None:
    cancel_with(order, Order.StockState.RESERVED, Order.PaymentState.DECLINED)
    assert not timeline.settled(order)  # inventory has not released the stock yet
    timeline.record(order.pk, "stock.release", "inventory", "put 2 x RB-MUG back in stock")
    assert timeline.settled(order)


def test_settled_is_judged_by_the_entries_the_page_shows(order: Order) -> None:
    """The order page's state reads the timeline once: a release entry committed between two
    reads once made a page call the story over ("nothing needed undoing") without the
    entry, and stop listening (seen in CI, tests/demo/test_shop_browser.py)."""
    cancel_with(order, Order.StockState.RESERVED, Order.PaymentState.DECLINED)
    shown = list(order.timeline.all())  # read before inventory's entry is committed
    timeline.record(order.pk, "stock.release", "inventory", "put 2 x RB-MUG back in stock")
    assert not timeline.settled(order, shown)  # the page keeps listening for it
    state = order_state(order)
    assert state["settled"] and any(entry["undoes"] for entry in state["timeline"])


def test_a_cancelled_order_waits_for_the_side_not_heard_yet(order: Order) -> None:
    cancel_with(order, "", Order.PaymentState.DECLINED)
    assert not timeline.settled(order)  # a reservation may still come, to be released
    cancel_with(order, Order.StockState.REJECTED, Order.PaymentState.DECLINED)
    assert timeline.settled(order)


def test_the_order_page_renders_the_timeline_and_what_was_undone(order: Order) -> None:
    cancel_with(order, Order.StockState.RESERVED, Order.PaymentState.DECLINED)
    timeline.record(order.pk, "stock.release", "inventory", "put 2 x <b>RB-MUG</b> back in stock")
    page = owner(order).get(f"/orders/{order.pk}/").content.decode()
    assert '<tr class="undo">' in page and "<code>stock.release</code>" in page
    assert "put 2 x &lt;b&gt;RB-MUG&lt;/b&gt; back in stock" in page  # escaped
    undone = page.split('<div id="undone">', 1)[1].split("</div>", 1)[0]
    assert "inventory: put 2 x &lt;b&gt;RB-MUG" in undone


def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_the_order_list_agrees_with_the_reservation_and_payment_lists(order: Order) -> None:
    cancel_with(order, Order.StockState.RESERVED, Order.PaymentState.CAPTURED)
    Reservation.objects.create(order=order, status=Reservation.Status.RELEASED)
    Payment.objects.create(order=order, amount=Decimal("25"), status=Payment.Status.REFUNDED)
    page = admin_client().get("/admin/orders/order/").content.decode()
    row = page.split(f">{order.pk}</a>", 1)[1].split("</tr>", 1)[0]
    assert ">released</a>" in row and ">refunded</a>" in row, row
    assert "reserved" not in row and "captured" not in row


def test_the_order_admin_links_its_reservation_payment_and_invoice(order: Order) -> None:
    reservation = Reservation.objects.create(order=order)
    payment = Payment.objects.create(order=order, amount=Decimal("25"), status="captured")
    invoice = Invoice.objects.create(order=order, amount=Decimal("25"))
    page = admin_client().get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f'href="/admin/inventory/reservation/{reservation.pk}/change/"' in page
    assert f'href="/admin/billing/payment/{payment.pk}/change/"' in page
    assert f'href="/admin/billing/invoice/{invoice.pk}/change/"' in page
    assert "sent to inventory and billing" in page  # the timeline inline
