"""The tutorial's Fibonacci service, called from a sync and an async view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from rabbitbus.transport import connections
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


@pytest.mark.django_db
def test_view_shows_the_remote_error(fib_server: None) -> None:
    staff = Client()
    staff.force_login(User.objects.create_user("tutor", is_staff=True))
    response = staff.get("/rpc/fib/99/")
    assert response.status_code == 400
    assert response.json() == {
        "error": "ValueError",
        "message": "n must be an integer from 0 to 35",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/rpc/fib/31/", "/rpc/afib/35/"])
async def test_anonymous_callers_may_not_ask_for_slow_numbers(url: str) -> None:
    response = await AsyncClient().get(url)  # no server needed: refused before the call
    assert response.status_code == 403
    assert response.json()["message"] == "n must be at most 30 (staff may ask for more)"
