"""The invoice email task's result as the order page shows it (demo_shop.orders.live)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from demo_shop.billing import payments
from demo_shop.billing.tasks import email_invoice
from demo_shop.orders.live import invoice_email
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus.models import TaskRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def order() -> Order:
    call_command("shop_seed", stdout=io.StringIO())
    placed = place_order("task@example.com", "4242", {"RB-MUG": 1})
    payments.issue_invoice(placed.pk)
    return placed


def enqueued(order: Order) -> Order:
    with transaction.atomic():  # as the saga does: published when this commits
        order.invoice_task_id = email_invoice.enqueue(order.pk).id
        order.save(update_fields=["invoice_task_id"])
    return order


def test_nothing_to_show_before_the_task_is_enqueued(order: Order) -> None:
    assert invoice_email(order) is None


def test_an_enqueued_task_is_ready_and_not_finished(order: Order) -> None:
    shown = invoice_email(enqueued(order))
    assert shown is not None
    assert (shown["status"], shown["finished"], shown["detail"]) == ("READY", False, "")


def test_a_run_task_shows_when_it_finished_and_whom_it_mailed(order: Order) -> None:
    order = enqueued(order)
    value = email_invoice.call(order.pk)  # the worker's part, then its result row
    finished = timezone.now()
    TaskRecord.objects.filter(pk=order.invoice_task_id).update(
        status="SUCCESSFUL", finished_at=finished, return_value=value
    )
    shown = invoice_email(order)
    assert shown is not None
    assert (shown["status"], shown["finished"]) == ("SUCCESSFUL", True)
    assert shown["finished_at"] == finished.isoformat()
    assert shown["detail"] == "sent to task@example.com"
    assert [m.to for m in mail.outbox] == [["task@example.com"]]


def test_the_email_is_sent_once_when_the_task_runs_again(order: Order) -> None:
    email_invoice.call(order.pk)
    email_invoice.call(order.pk)  # at least once: a worker killed mid-task runs it again
    assert len(mail.outbox) == 1


def test_a_pruned_result_ends_the_pages_polling(order: Order) -> None:
    order = enqueued(order)
    TaskRecord.objects.all().delete()
    shown = invoice_email(order)
    assert shown is not None and shown["finished"] is True
    assert shown["detail"] == "result no longer stored"


def test_the_status_json_carries_it(order: Order) -> None:
    order = enqueued(order)
    staff = Client()
    staff.force_login(User.objects.create_superuser("s", "s@example.com", "pw"))
    data = staff.get(f"/orders/{order.pk}/status.json").json()
    assert data["invoice_email"]["status"] == "READY"
