"""Pricing the cart over RPC from the storefront: catalog.quote, up and down."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import AsyncClient, Client

from demo_shop.catalog.rabbit import UnknownProduct, quote
from rabbitbus.testing import RabbitBroker
from rabbitbus.transport import connections
from tests.broker import Broker
from tests.rpc_support import raw_server, serving

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "rpc.catalog.quote"


@pytest.fixture(autouse=True)
def seeded() -> None:
    call_command("shop_seed", stdout=io.StringIO())


CART = {"RB-MUG": 2, "RB-RARE": 3}


@pytest.fixture
def shopper(client: Client) -> Client:
    """A sync client with a cart, for the sync checkout view (``call``)."""
    for sku, quantity in CART.items():
        client.post(f"/cart/add/{sku}/", {"quantity": quantity})
    return client


async def cart_page() -> tuple[int, bytes]:
    """The async cart view (``acall``), from a client with the same cart."""
    shopper = AsyncClient()
    try:
        for sku, quantity in CART.items():
            await shopper.post(f"/cart/add/{sku}/", {"quantity": quantity})
        response = await shopper.get("/cart/")
    finally:
        await connections.aclose_all()
    return response.status_code, response.content


@pytest.fixture
def no_server_queue(broker: Broker) -> None:
    """No RPC queue at all: as before the first server ever started (earlier tests made one)."""
    with broker.channel() as channel:
        channel.queue_delete(QUEUE)


@pytest.fixture
def server_queue_without_server(broker: Broker) -> Iterator[None]:
    """The queue a stopped server left behind: requests wait there and expire."""
    with broker.channel() as channel:
        channel.queue_declare(QUEUE, durable=True)
    yield
    with broker.channel() as channel:
        channel.queue_delete(QUEUE)


@pytest.fixture
def mute_server(broker: Broker) -> Iterator[None]:
    """A server that takes requests and never answers (hung, or far too slow)."""
    with raw_server(broker, QUEUE, lambda *request: None):
        yield
    with broker.channel() as channel:
        channel.queue_delete(QUEUE)


def test_quote_prices_lines_and_flags_short_stock() -> None:
    result = quote({"RB-MUG": 2, "RB-RARE": 3, "RB-SOCK": 0})
    assert [(line["sku"], line["subtotal"], line["available"]) for line in result["lines"]] == [
        ("RB-MUG", "25.00", True),
        ("RB-RARE", "597.00", False),
    ]
    assert (result["total"], result["available"]) == ("622.00", False)


def test_quote_refuses_an_unknown_product() -> None:
    with pytest.raises(UnknownProduct, match="RB-NOPE"):
        quote({"RB-NOPE": 1})


def test_checkout_shows_the_quote_from_the_catalog_service(
    rabbit_broker: RabbitBroker, shopper: Client
) -> None:
    # rabbitbus.testing's own throwaway vhost and in-process server, as a project would.
    rabbit_broker.worker(consumers=(), procedures=["catalog.quote"])
    response = shopper.get("/checkout/")
    assert response.status_code == 200
    assert_quoted(response.content)


async def test_cart_shows_the_quote_from_the_catalog_service() -> None:
    with serving("catalog.quote"):
        status, content = await cart_page()
    assert status == 200
    assert_quoted(content)


def assert_quoted(content: bytes) -> None:
    assert b'id="quote"' in content
    assert b"622.00" in content
    assert b"not enough in stock: only 1 left" in content


def test_checkout_offers_the_order_button_only_with_a_quote(shopper: Client) -> None:
    with serving("catalog.quote"):
        assert b'id="place-order"' in shopper.get("/checkout/").content
    assert b'id="place-order"' not in shopper.get("/checkout/").content


NOT_RUNNING = b"We could not check current prices: the price service is not running."
NOT_ANSWERING = b"the price service did not answer within 2 seconds."


@pytest.mark.usefixtures("no_server_queue")
def test_checkout_says_when_no_price_server_exists(shopper: Client) -> None:
    response = shopper.get("/checkout/")
    assert (response.status_code, NOT_RUNNING in response.content) == (503, True)
    assert b'id="retry"' in response.content


@pytest.mark.usefixtures("no_server_queue")
async def test_cart_says_when_no_price_server_exists() -> None:
    status, content = await cart_page()
    assert (status, NOT_RUNNING in content) == (503, True)


@pytest.mark.usefixtures("server_queue_without_server")
def test_checkout_says_when_the_price_servers_are_all_stopped(shopper: Client) -> None:
    response = shopper.get("/checkout/")
    assert (response.status_code, NOT_RUNNING in response.content) == (503, True)


@pytest.mark.usefixtures("server_queue_without_server")
async def test_cart_says_when_the_price_servers_are_all_stopped() -> None:
    status, content = await cart_page()
    assert (status, NOT_RUNNING in content) == (503, True)


@pytest.mark.usefixtures("mute_server")
def test_checkout_says_when_the_price_server_does_not_answer(shopper: Client) -> None:
    response = shopper.get("/checkout/")
    assert (response.status_code, NOT_ANSWERING in response.content) == (503, True)


@pytest.mark.usefixtures("mute_server")
async def test_cart_says_when_the_price_server_does_not_answer() -> None:
    status, content = await cart_page()
    assert (status, NOT_ANSWERING in content) == (503, True)


@pytest.mark.usefixtures("no_server_queue")
def test_retry_works_once_the_server_is_back(shopper: Client) -> None:
    assert shopper.get("/checkout/").status_code == 503
    with serving("catalog.quote"):
        assert shopper.get("/checkout/").status_code == 200
