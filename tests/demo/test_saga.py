"""The order saga's decisions, whatever order inventory's and billing's answers come in."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from demo_shop.billing.tasks import email_invoice
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus.models import OutboxMessage, TaskRecord
from rabbitbus.testing import run_consumer

pytestmark = pytest.mark.django_db


@pytest.fixture
def order() -> Order:
    call_command("shop_seed", stdout=io.StringIO())
    placed = place_order("saga@example.com", "4242", {"RB-MUG": 1})
    OutboxMessage.objects.all().delete()  # only what the saga emits counts below
    return placed


def hear(order: Order, routing_key: str, **body: str) -> None:
    """The orders consumer hears ``routing_key``, as its worker would run it."""
    outcome = run_consumer("orders", {"order_id": order.pk, **body}, routing_key=routing_key)
    assert outcome.acked, outcome.reason
    order.refresh_from_db()


def emitted() -> list[str]:
    return list(OutboxMessage.objects.order_by("id").values_list("routing_key", flat=True))


def statuses(order: Order) -> list[str]:
    return [change.status for change in order.history.all()]


@pytest.mark.parametrize(
    "answers",
    [("stock.reserved", "payment.captured"), ("payment.captured", "stock.reserved")],
)
def test_both_yes_in_either_order_makes_it_paid_then_invoiced(
    order: Order, answers: tuple[str, str]
) -> None:
    for key in answers:
        hear(order, key)
    assert statuses(order) == ["placed", "reserved", "paid"]
    assert emitted() == ["order.paid"]
    assert not TaskRecord.objects.exists()
    hear(order, "invoice.issued")
    assert order.status == "confirmed"
    record = TaskRecord.objects.get(pk=order.invoice_task_id)  # the invoice email, enqueued
    assert (record.task_path, record.args) == (email_invoice.module_path, [order.pk])


def test_stock_rejected_after_a_capture_refunds(order: Order) -> None:
    hear(order, "payment.captured")
    hear(order, "stock.rejected", reason="RB-MUG is out of stock.")
    assert (order.status, order.reason) == ("cancelled", "RB-MUG is out of stock.")
    assert emitted() == ["payment.refund"]


def test_a_capture_after_the_cancellation_is_refunded(order: Order) -> None:
    hear(order, "stock.rejected", reason="gone")
    hear(order, "payment.captured")
    assert order.status == "cancelled"
    assert emitted() == ["payment.refund"]


def test_a_decline_after_a_reservation_releases_it(order: Order) -> None:
    hear(order, "stock.reserved")
    hear(order, "payment.declined", reason="The card was declined.")
    assert statuses(order) == ["placed", "reserved", "cancelled"]
    assert emitted() == ["stock.release"]


def test_a_reservation_after_the_cancellation_is_released(order: Order) -> None:
    hear(order, "payment.declined")
    hear(order, "stock.reserved")
    assert (order.status, order.reason) == ("cancelled", "Payment declined.")
    assert emitted() == ["stock.release"]


def test_repeated_answers_change_nothing_more(order: Order) -> None:
    for key in ("stock.reserved", "stock.reserved", "payment.captured", "payment.captured"):
        hear(order, key)
    hear(order, "invoice.issued")
    hear(order, "invoice.issued")
    assert statuses(order) == ["placed", "reserved", "paid", "confirmed"]
    assert emitted() == ["order.paid"]
    assert TaskRecord.objects.count() == 1  # one invoice email


def test_a_late_no_never_cancels_a_paid_order(order: Order) -> None:
    hear(order, "stock.reserved")
    hear(order, "payment.captured")
    hear(order, "stock.rejected", reason="contradiction")
    assert order.status == "paid"
    assert emitted() == ["order.paid"]


def test_services_handle_eight_at_once_on_postgresql_and_four_on_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.conf import settings

    from demo_shop import bus

    default = settings.DATABASES["default"]
    monkeypatch.setitem(default, "ENGINE", "django.db.backends.sqlite3")
    assert bus.handlers_at_once() == 4
    monkeypatch.setitem(default, "ENGINE", "django.db.backends.postgresql")
    assert bus.handlers_at_once() == 8
