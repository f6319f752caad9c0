"""The tutorial's Fibonacci service, called from a sync and an async view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import AsyncClient, Client

from rabbitbus import connections
from tests.rpc_support import serving


@pytest.fixture(scope="module")
def fib_server() -> Iterator[None]:
    with serving("fib"):
        yield


def test_sync_view_calls_fib(fib_server: None) -> None:
    response = Client().get("/rpc/fib/10/")
    assert response.status_code == 200
    assert response.json() == {"n": 10, "fib": 55}


async def test_async_view_calls_fib(fib_server: None) -> None:
    try:
        response = await AsyncClient().get("/rpc/afib/20/")
    finally:
        await connections.aclose_all()
    assert response.status_code == 200
    assert response.json() == {"n": 20, "fib": 6765}


def test_view_shows_the_remote_error(fib_server: None) -> None:
    response = Client().get("/rpc/fib/99/")
    assert response.status_code == 400
    assert response.json() == {
        "error": "ValueError",
        "message": "n must be an integer from 0 to 35",
    }
