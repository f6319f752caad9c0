"""Issue 5, point 4: a checkout while RabbitMQ is down still succeeds and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

import rabbitbus
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox import bridges
from rabbitbus.outbox.relay import Relay
from tests.broker import UPSTREAM, Broker
from tests.consuming import drain
from tests.fault_proxy import FaultProxy
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.testapp.urls"),
]


@pytest.fixture
def shop(exchange: str) -> Iterator[FaultProxy]:
    """An outbox bridge on Order, and the broker reachable only through a proxy."""
    declared = rabbitbus.bridge(
        Order, exchange=exchange, routing_key="order.{event}", mode="outbox"
    )
    with FaultProxy(upstream=UPSTREAM) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{django_settings.TEST_VHOST}"
        with override_settings(RABBITBUS={"CONNECTIONS": {"default": {"URL": url}}}):
            yield proxy
    declared.disconnect()
    bridges._registry.remove(declared)


def test_checkout_succeeds_with_the_broker_down_and_publishes_when_it_is_back(
    shop: FaultProxy, broker: Broker, queue: str
) -> None:
    shop.refuse(True)
    response = Client().post("/checkout/", {"number": "A-100"})
    assert response.status_code == 201
    assert OutboxMessage.objects.filter(status="pending").count() == 1
    shop.refuse(False)
    assert Relay().run_once() == 1
    (message,) = drain(broker, queue)
    assert (message.routing_key, message.payload["number"]) == ("order.created", "A-100")


def test_a_refused_checkout_sends_nothing(shop: FaultProxy, broker: Broker, queue: str) -> None:
    response = Client().post("/checkout/", {"number": "A-101", "fail": "1"})
    assert response.status_code == 400
    assert not Order.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert Relay().run_once() == 0
    assert drain(broker, queue) == []
