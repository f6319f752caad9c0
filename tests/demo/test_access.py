"""Issue 13, point 2: a visitor sees only their own orders, on every page and on the socket."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.test import Client

from demo_shop.asgi import application
from demo_shop.orders.models import Order
from demo_shop.orders.services import place_order
from rabbitbus.transport import connections
from tests.broker import Broker
from tests.demo.visitors import ORIGIN, cookie, owner, staff
from tests.rpc_support import serving

pytestmark = pytest.mark.django_db(transaction=True)

BAD_IDS = ["-1", "0", "abc", "1.5", "%2F", "9" * 30, "١٢"]


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


def an_order(email: str = "owner@example.com") -> Order:
    return place_order(email, "4242424242424242", {"RB-MUG": 1})


def order_urls(pk: object) -> list[str]:
    return [f"/orders/{pk}/", f"/orders/{pk}/status.json"]


def test_checkout_lets_its_own_session_follow_the_order() -> None:
    shopper = Client()
    shopper.post("/cart/add/RB-MUG/", {"quantity": 1})
    with serving("catalog.quote"):
        response = shopper.post(
            "/checkout/", {"email": "mine@example.com", "card_number": "4242424242424242"}
        )
    pk = Order.objects.get().pk
    assert response["Location"] == f"/orders/{pk}/"
    assert [shopper.get(url).status_code for url in order_urls(pk)] == [200, 200]
    assert b"mine@example.com" in shopper.get("/orders/").content


def test_another_session_gets_404_for_the_page_and_the_status() -> None:
    order = an_order()
    for stranger in (Client(), owner(an_order("other@example.com"))):
        assert [stranger.get(url).status_code for url in order_urls(order.pk)] == [404, 404]


def test_the_order_list_shows_only_your_own_orders() -> None:
    mine, theirs = an_order("mine@example.com"), an_order("theirs@example.com")
    page = owner(mine).get("/orders/").content
    assert b"mine@example.com" in page and b"theirs@example.com" not in page
    assert b"@example.com" not in Client().get("/orders/").content
    assert theirs.pk != mine.pk


def test_enumerated_and_malformed_ids_give_nothing() -> None:
    existing = [an_order(f"n{n}@example.com").pk for n in range(3)]
    stranger = Client()
    for pk in [*existing, *BAD_IDS, max(existing) + 1]:
        for url in order_urls(pk):
            response = stranger.get(url)
            assert response.status_code == 404, url
            assert b"@example.com" not in response.content, url


def test_staff_see_every_order() -> None:
    orders = [an_order(f"s{n}@example.com") for n in range(2)]
    visitor = staff()
    for order in orders:
        assert [visitor.get(url).status_code for url in order_urls(order.pk)] == [200, 200]
    assert visitor.get(f"/orders/{'9' * 30}/").status_code == 404


# -- the order WebSocket -------------------------------------------------------


@pytest.fixture
async def shop_exchange(broker: Broker) -> AsyncIterator[None]:
    with broker.channel() as channel:
        channel.exchange_declare("shop", "topic", durable=True)
    yield
    await connections.aclose_all()


async def handshake(path: str, *headers: tuple[bytes, bytes]) -> tuple[bool, dict | None]:
    """Whether the socket was accepted, and its first message if it was."""
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
    try:
        connected, _ = await communicator.connect(timeout=10)
        first = await communicator.receive_json_from(timeout=10) if connected else None
    finally:
        await communicator.disconnect()
    return connected, first


@pytest.mark.usefixtures("shop_exchange")
async def test_the_socket_takes_only_the_owner_and_staff() -> None:
    order = await database_sync_to_async(an_order)()
    path = f"/ws/orders/{order.pk}/"
    mine = await database_sync_to_async(owner)(order)
    other = await database_sync_to_async(lambda: owner(an_order("x@example.com")))()
    boss = await database_sync_to_async(staff)()
    connected, first = await handshake(path, cookie(mine))
    assert connected and first is not None and first["id"] == order.pk
    assert (await handshake(path))[0] is False  # no cookie
    assert (await handshake(path, cookie(other)))[0] is False
    assert (await handshake(path, cookie(boss)))[0] is True


@pytest.mark.usefixtures("shop_exchange")
async def test_the_socket_refuses_malformed_ids() -> None:
    boss = await database_sync_to_async(staff)()
    for bad in (bad for bad in BAD_IDS if "%" not in bad):  # a URL route never sees "/"
        assert (await handshake(f"/ws/orders/{bad}/", cookie(boss))) == (False, None), bad
