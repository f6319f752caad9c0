"""The demo shop's order flow on a real RabbitMQ, in-process, with rabbitbus.testing's
``rabbit_broker``: a throwaway vhost, the shop's consumers on a background thread, the
outbox relayed by the test. (test_flow_in_memory.py runs it without a broker,
test_flow.py with every service as a process.) On PostgreSQL: SQLite's shared in-memory
test database locks a table a thread writes to, and the relay and handlers write at once.
Run with ``pytest --ds=tests.settings_pg -m postgres`` (``scripts/test.sh`` does).
"""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command

from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus.outbox.relay import Relay
from rabbitbus.testing import RabbitBroker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


def relay_until_final(order: Order, timeout: float = 30) -> Order:
    """Relay the outbox (rabbit_outbox's job) until ``order`` is confirmed or cancelled."""
    relay = Relay()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay.run_once()
        order.refresh_from_db()
        if order.status in Order.FINAL:
            return order
        time.sleep(0.05)
    pytest.fail(f"order {order.pk} still {order.status} after {timeout}s")


def test_an_order_is_reserved_paid_and_confirmed(rabbit_broker: RabbitBroker) -> None:
    rabbit_broker.worker(consumers=None, procedures=())  # every consumer of the shop
    order = place_order("buyer@example.com", "4242424242424242", {"RB-MUG": 2})
    order = relay_until_final(order)
    assert order.status == Order.Status.CONFIRMED
    assert [change.status for change in order.history.all()] == [
        "placed",
        "reserved",
        "paid",
        "confirmed",
    ]


def test_a_declined_card_cancels_the_order(rabbit_broker: RabbitBroker) -> None:
    rabbit_broker.worker(consumers=["inventory", "billing", "orders"], procedures=())
    order = place_order("buyer@example.com", "4000000000000002", {"RB-TEE": 1})
    assert relay_until_final(order).status == Order.Status.CANCELLED
