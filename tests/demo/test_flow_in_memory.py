"""The demo shop's order flow end to end in memory, with rabbitbus.testing's fixtures.

checkout -> inventory and billing -> the saga -> paid -> invoice -> confirmed, and
its compensations, run by the shop's own consumers through the outbox, no broker.
(tests/demo/test_flow.py runs the same flow as real processes on RabbitMQ.)
"""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.core.management import call_command

from demo_shop.billing.tasks import email_invoice
from demo_shop.catalog.rabbit import UnknownProduct
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus import rpc
from rabbitbus.tasks.compat import TaskResultStatus
from rabbitbus.testing import Capture, InMemoryBroker

pytestmark = [pytest.mark.django_db, pytest.mark.rabbit_memory(relay_outbox=True)]


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


def checkout(broker: InMemoryBroker, card: str, cart: dict[str, int]) -> Order:
    order = place_order("buyer@example.com", card, cart)
    broker.relay_outbox()  # the relay's job: order.placed, then every hop after it
    order.refresh_from_db()
    return order


def test_an_order_is_reserved_paid_invoiced_and_confirmed(rabbit_memory: InMemoryBroker) -> None:
    order = checkout(rabbit_memory, "4242424242424242", {"RB-MUG": 2})
    assert order.status == Order.Status.CONFIRMED
    keys = rabbit_memory.routing_keys
    assert keys[0] == "order.placed"  # inventory and billing answer in either order
    assert sorted(keys[1:3]) == ["payment.captured", "stock.reserved"]
    assert keys[3:] == ["order.paid", "invoice.issued"]
    rabbit_memory.assert_published(routing_key="order.placed", payload_includes={"total": "25.00"})
    assert {o.action for o in rabbit_memory.outcomes()} == {"acked"}
    # Confirming enqueued the invoice email task (published on commit: no broker here).
    assert email_invoice.get_result(order.invoice_task_id).status == TaskResultStatus.READY
    assert email_invoice.get_result(order.invoice_task_id).args == [order.pk]
    assert len(mail.outbox) == 0
    email_invoice.call(order.pk)  # what the billing worker does with it
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_sold_out_stock_cancels_and_refunds(rabbit_memory: InMemoryBroker) -> None:
    order = checkout(rabbit_memory, "4242424242424242", {"RB-RARE": 2})
    assert order.status == Order.Status.CANCELLED
    rabbit_memory.assert_published(routing_key="stock.rejected")
    rabbit_memory.assert_published(routing_key="payment.refund")
    rabbit_memory.assert_not_published(routing_key="order.paid")


def test_a_declined_card_cancels_and_releases_stock(rabbit_memory: InMemoryBroker) -> None:
    order = checkout(rabbit_memory, "4000000000000002", {"RB-TEE": 1})
    assert order.status == Order.Status.CANCELLED
    assert "declined" in order.reason
    rabbit_memory.assert_published(routing_key="payment.declined")
    rabbit_memory.assert_published(routing_key="stock.release")
    assert len(mail.outbox) == 0


def test_checkout_writes_order_placed_to_the_outbox(rabbit_published: Capture) -> None:
    place_order("buyer@example.com", "4242424242424242", {"RB-SOCK": 3})
    assert len(rabbit_published) == 0  # written, not relayed
    rabbit_published.outbox().assert_published(
        routing_key="order.placed", payload_includes={"total": "23.97"}
    )


def test_the_catalog_quotes_over_rpc_in_memory(rabbit_memory: InMemoryBroker) -> None:
    assert rpc.call("catalog.quote", {"RB-MUG": 2})["total"] == "25.00"
    with pytest.raises(UnknownProduct):
        rpc.call("catalog.quote", {"NOPE": 1})
