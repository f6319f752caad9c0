"""The order page's WebSocket: the current status at once, then each change, pushed by RabbitMQ."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command

from demo_shop.asgi import application
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus.transport import connections
from tests.broker import Broker
from tests.demo.visitors import ORIGIN, cookie, owner, staff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def shop_exchange(broker: Broker) -> AsyncIterator[None]:
    with broker.channel() as channel:
        channel.exchange_declare("shop", "topic", durable=True)
    yield
    await connections.aclose_all()


@database_sync_to_async
def new_order() -> Order:
    call_command("shop_seed", stdout=io.StringIO())
    return place_order("live@example.com", "4242", {"RB-MUG": 1})


@database_sync_to_async
def move(order: Order, status: str, reason: str = "") -> None:
    order.move_to(status, reason)


async def watch(pk: int) -> WebsocketCommunicator:
    """The order's socket, opened by the session that placed it (or by staff)."""
    order = await database_sync_to_async(Order.objects.filter(pk=pk).first)()
    visitor = await database_sync_to_async(owner)(order) if order else await staff_client()
    headers = [ORIGIN, cookie(visitor)]
    communicator = WebsocketCommunicator(application, f"/ws/orders/{pk}/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


staff_client = database_sync_to_async(staff)


async def next_state(communicator: WebsocketCommunicator) -> dict[str, Any]:
    state: dict[str, Any] = await communicator.receive_json_from(timeout=10)
    return state


async def test_the_page_gets_the_status_then_every_change() -> None:
    order = await new_order()
    communicator = await watch(order.pk)
    try:
        first = await next_state(communicator)
        assert (first["type"], first["id"], first["status"]) == ("order", order.pk, "placed")
        await move(order, Order.Status.RESERVED)
        assert (await next_state(communicator))["status"] == "reserved"
        await move(order, Order.Status.CANCELLED, "Out of stock.")
        last = await next_state(communicator)
    finally:
        await communicator.disconnect()
    assert (last["status"], last["reason"]) == ("cancelled", "Out of stock.")
    assert [change["status"] for change in last["history"]] == ["placed", "reserved", "cancelled"]


async def test_changes_of_other_orders_are_not_sent() -> None:
    watched, other = await new_order(), await new_order()
    communicator = await watch(watched.pk)
    try:
        await next_state(communicator)
        await move(other, Order.Status.RESERVED)
        await move(watched, Order.Status.RESERVED)
        state = await next_state(communicator)
    finally:
        await communicator.disconnect()
    assert (state["id"], state["status"]) == (watched.pk, "reserved")


async def test_an_unknown_order_says_missing() -> None:
    communicator = await watch(999_999)
    try:
        state = await next_state(communicator)
    finally:
        await communicator.disconnect()
    assert state == {"type": "order", "id": 999_999, "missing": True}


@database_sync_to_async
def record(order: Order, message: str, service: str, outcome: str) -> None:
    from demo_shop.orders import timeline

    timeline.record(order.pk, message, service, outcome)


async def test_each_timeline_entry_is_pushed_to_the_page() -> None:
    order = await new_order()
    communicator = await watch(order.pk)
    try:
        first = await next_state(communicator)
        await record(order, "stock.reserved", "orders", "order reserved")
        state = await next_state(communicator)
    finally:
        await communicator.disconnect()
    assert [entry["message"] for entry in first["timeline"]] == ["order.placed"]
    assert [(e["message"], e["service"]) for e in state["timeline"]] == [
        ("order.placed", "checkout"),
        ("stock.reserved", "orders"),
    ]
    assert state["settled"] is False
