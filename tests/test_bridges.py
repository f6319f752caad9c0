"""Signal bridges: what a model change publishes, and when (SQLite, real broker)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.dispatch import Signal
from django.test import override_settings

import rabbitbus
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox import bridges
from rabbitbus.outbox.bridges import Bridge
from rabbitbus.outbox.relay import Relay
from tests.broker import Broker
from tests.consuming import drain
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

order_shipped = Signal()


class Boom(Exception):
    pass


def order_summary(instance: Order, event: str, **kwargs: Any) -> dict[str, Any]:
    return {"order": instance.number, "event": event}


@pytest.fixture
def bridge(exchange: str) -> Iterator[Callable[..., Bridge]]:
    """Declare bridges on ``Order`` for one test; removed afterwards."""
    made: list[Bridge] = []

    def make(**options: Any) -> Bridge:
        options.setdefault("model", Order)
        options.setdefault("routing_key", "order.{event}")
        declared = rabbitbus.bridge(exchange=exchange, **options)
        made.append(declared)
        return declared

    yield make
    for declared in made:
        declared.disconnect()
        bridges._registry.remove(declared)


def test_rollback_publishes_nothing(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge()
    with pytest.raises(Boom), transaction.atomic():
        Order.objects.create(number="A-1")
        raise Boom
    assert drain(broker, queue) == []


def test_commit_publishes_exactly_once_and_only_after_commit(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge()
    with transaction.atomic():
        order = Order.objects.create(number="A-2", total="12.50")
        assert broker.queue_depth(queue) == 0
    (message,) = drain(broker, queue)
    assert message.routing_key == "order.created"
    assert message.payload == {
        "id": order.pk,
        "number": "A-2",
        "total": "12.50",
        "status": "placed",
    }
    assert message.type == "testapp.order.created"


def test_rolled_back_savepoint_publishes_nothing_for_its_changes(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge()
    with transaction.atomic():
        Order.objects.create(number="kept")
        with pytest.raises(Boom), transaction.atomic():
            Order.objects.create(number="rolled-back")
            raise Boom
    assert [m.payload["number"] for m in drain(broker, queue)] == ["kept"]


def test_created_updated_deleted_are_routed_apart(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge()
    order = Order.objects.create(number="A-3")
    order.status = "paid"
    order.save()
    pk = order.pk
    order.delete()
    delivered = drain(broker, queue)
    assert [m.routing_key for m in delivered] == ["order.created", "order.updated", "order.deleted"]
    assert delivered[1].payload["status"] == "paid"
    assert delivered[2].payload["id"] == pk


def test_events_limit_what_is_published(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(events=("deleted",))
    order = Order.objects.create(number="A-4")
    order.delete()
    assert [m.routing_key for m in drain(broker, queue)] == ["order.deleted"]


def test_fields_list_headers_and_callable_routing_key(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(
        payload=["number"],
        headers={"tenant": "acme"},
        routing_key=lambda instance, event: f"shop.{instance.status}.{event}",
    )
    Order.objects.create(number="A-5")
    (message,) = drain(broker, queue)
    assert (message.routing_key, message.payload) == ("shop.placed.created", {"number": "A-5"})
    assert message.headers == {"tenant": "acme"}


def test_payload_builder_by_dotted_path(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(payload="tests.test_bridges.order_summary")
    Order.objects.create(number="A-6")
    assert drain(broker, queue)[0].payload == {"order": "A-6", "event": "created"}


def test_custom_signal_bridge(bridge: Callable[..., Bridge], broker: Broker, queue: str) -> None:
    bridge(model=None, signal=order_shipped, routing_key="order.shipped")
    order_shipped.send(sender=Order, number="A-7", carrier="ups")
    (message,) = drain(broker, queue)
    assert (message.routing_key, message.payload) == (
        "order.shipped",
        {"number": "A-7", "carrier": "ups"},
    )


def test_custom_signal_about_an_instance(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(
        model=None, signal=order_shipped, routing_key="order.{pk}.shipped", payload=order_summary
    )
    order = Order.objects.create(number="A-10")
    order_shipped.send(sender=Order, instance=order, carrier="ups")
    (message,) = drain(broker, queue)
    assert (message.routing_key, message.payload) == (
        f"order.{order.pk}.shipped",
        {"order": "A-10", "event": "signal"},
    )


def test_message_options_reach_the_broker(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(options={"persistent": False, "priority": 3})
    Order.objects.create(number="A-11")
    (message,) = drain(broker, queue)
    assert (message.properties.delivery_mode, message.properties.priority) == (1, 3)


def test_an_unroutable_event_with_mandatory_off_is_dropped_quietly(
    bridge: Callable[..., Bridge], broker: Broker
) -> None:
    bridge(routing_key="nobody.listens", options={"mandatory": False})
    Order.objects.create(number="A-12")
    assert not OutboxMessage.objects.exists()


def test_outbox_mode_writes_a_row_with_the_change_only(
    bridge: Callable[..., Bridge], broker: Broker, queue: str
) -> None:
    bridge(mode="outbox")
    with pytest.raises(Boom), transaction.atomic():
        Order.objects.create(number="gone")
        raise Boom
    with transaction.atomic():
        order = Order.objects.create(number="A-8")
    row = OutboxMessage.objects.get()
    assert (row.status, row.aggregate) == ("pending", f"testapp.order:{order.pk}")
    assert drain(broker, queue, idle=0.2) == []
    assert Relay().run_once() == 1
    assert [m.payload["number"] for m in drain(broker, queue)] == ["A-8"]


def test_settings_bridges_are_connected(exchange: str, broker: Broker, queue: str) -> None:
    setting = [{"MODEL": "testapp.Order", "EXCHANGE": exchange, "ROUTING_KEY": "o.{event}"}]
    with override_settings(RABBITBUS={**_rabbitbus(), "BRIDGES": setting}):
        bridges.connect_all()
        try:
            Order.objects.create(number="A-9")
        finally:
            for declared in bridges._settings_bridges:
                declared.disconnect()
    assert [m.routing_key for m in drain(broker, queue)] == ["o.created"]


def test_a_bridge_that_cannot_publish_is_named_in_a_warning_at_startup(
    exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    setting = [
        {"MODEL": "testapp.NoSuchModel", "EXCHANGE": exchange},
        {"MODEL": "testapp.Order", "EXCHANGE": exchange, "ROUTNG_KEY": "o.{event}"},
        {"MODEL": "testapp.Order"},
    ]
    in_code = Bridge(exchange=exchange, signal="tests.test_bridges.no_such_signal")
    bridges._registry.append(in_code)
    caplog.set_level(logging.WARNING, logger="rabbitbus.outbox.bridges")
    try:
        with override_settings(RABBITBUS={**_rabbitbus(), "BRIDGES": setting}):
            apps.get_app_config("rabbitbus").ready()
    finally:
        bridges._registry.remove(in_code)
        bridges.connect_all()
    lines = {record.getMessage() for record in caplog.records if record.levelname == "WARNING"}
    assert len(lines) == 4, lines
    assert any(
        line.startswith("RABBITBUS['BRIDGES'][0] is not connected and will not publish: ")
        and "NoSuchModel" in line
        for line in lines
    ), lines
    assert (
        "RABBITBUS['BRIDGES'][1] is not connected and will not publish: "
        "unknown key(s) ROUTNG_KEY." in lines
    )
    assert (
        "RABBITBUS['BRIDGES'][2] is not connected and will not publish: "
        "it is not a dict with an EXCHANGE." in lines
    )
    assert any(
        line.startswith("bridge('tests.test_bridges.no_such_signal') is not connected")
        and "no_such_signal" in line.split(":", 1)[1]
        for line in lines
    ), lines


def test_a_settings_bridge_with_a_typo_in_its_options_is_not_connected(
    exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    setting = [{"MODEL": "testapp.Order", "EXCHANGE": exchange, "OPTIONS": {"mandatori": False}}]
    caplog.set_level(logging.WARNING, logger="rabbitbus.outbox.bridges")
    with override_settings(RABBITBUS={**_rabbitbus(), "BRIDGES": setting}):
        bridges.connect_all()
        try:
            Order.objects.create(number="A-13")  # publishes nothing, raises nothing
            assert not OutboxMessage.objects.exists()
        finally:
            for declared in bridges._settings_bridges:
                declared.disconnect()
    (line,) = [r.getMessage() for r in caplog.records if "BRIDGES'][0]" in r.getMessage()]
    assert line.startswith("RABBITBUS['BRIDGES'][0] is not connected and will not publish: ")
    assert "rabbitbus.E046" in line
    assert "mandatori" in line


def test_a_typo_in_the_options_of_a_bridge_in_code_is_refused_at_once(exchange: str) -> None:
    with pytest.raises(ConfigurationError, match=r"mandatori; valid: correlation_id"):
        rabbitbus.bridge(Order, exchange=exchange, options={"mandatori": False})
    assert all("mandatori" not in declared.options for declared in bridges.registered())


def test_connecting_again_leaves_each_settings_bridge_connected_once(
    exchange: str, broker: Broker, queue: str
) -> None:
    setting = [{"MODEL": "testapp.Order", "EXCHANGE": exchange, "ROUTING_KEY": "o.{event}"}]
    with override_settings(RABBITBUS={**_rabbitbus(), "BRIDGES": setting}):
        bridges.connect_all()
        bridges.connect_all()
        try:
            Order.objects.create(number="A-10")
        finally:
            for declared in bridges._settings_bridges:
                declared.disconnect()
    assert [m.routing_key for m in drain(broker, queue)] == ["o.created"]


def _rabbitbus() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.RABBITBUS)
