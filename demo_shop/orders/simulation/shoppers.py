"""Shoppers for ``shop_simulate``: each places orders through the storefront's views.

A shopper clicks as a person would: add a product to the cart, open the
checkout page (which prices the cart over the ``catalog.quote`` RPC), place
the order. :class:`ClientShopper` drives Django's test client in this
process; :class:`HttpShopper` talks HTTP to a running server with a cookie
jar and the CSRF token. A shopper belongs to one thread.
"""

from __future__ import annotations

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import connections as databases
from django.http.request import validate_host
from django.test import Client
from django.urls import Resolver404, resolve, reverse

from rabbitbus.transport import connections


class CheckoutFailed(Exception):
    """A page did not answer as a shopper expects; the message says what it showed."""


@dataclass(frozen=True)
class OrderSpec:
    """What one simulated shopper buys, and with which card."""

    sku: str
    quantity: int
    email: str
    card_number: str


class Shopper(Protocol):
    def place(self, spec: OrderSpec) -> int:
        """Place the order; returns its id. Raises :class:`CheckoutFailed`."""

    def close(self) -> None:
        """Release what this thread opened."""


class ClientShopper:
    """The storefront in this process, through ``django.test.Client``."""

    def __init__(self) -> None:
        self.client = Client(SERVER_NAME=allowed_host())

    def place(self, spec: OrderSpec) -> int:
        add = reverse("add_to_cart", args=[spec.sku])
        response = self.client.post(add, {"quantity": spec.quantity})
        expect(response.status_code, 302, f"POST {add}", response.content)
        response = self.client.get(reverse("checkout"))
        expect(response.status_code, 200, "GET /checkout/", response.content)
        form = {"email": spec.email, "card_number": spec.card_number}
        response = self.client.post(reverse("checkout"), form)
        expect(response.status_code, 302, "POST /checkout/", response.content)
        return order_id(response["Location"])

    def close(self) -> None:
        connections.close_all()
        databases.close_all()


class HttpShopper:
    """A running storefront at ``base_url``, over plain HTTP (urllib)."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _KeepRedirects()
        )

    def place(self, spec: OrderSpec) -> int:
        if self._csrf_token() is None:
            self._request("GET", reverse("products"), 200)
        self._request("POST", reverse("add_to_cart", args=[spec.sku]), 302, quantity=spec.quantity)
        self._request("GET", reverse("checkout"), 200)
        form = {"email": spec.email, "card_number": spec.card_number}
        return order_id(self._request("POST", reverse("checkout"), 302, **form))

    def close(self) -> None:
        self.opener.close()

    def _request(self, method: str, path: str, status: int, **form: object) -> str:
        """Send one request; returns the ``Location`` header (empty when none)."""
        data, headers = None, {}
        if method == "POST":
            fields = {**form, "csrfmiddlewaretoken": self._csrf_token()}
            data = urllib.parse.urlencode(fields).encode()
            headers = {"Referer": self.base_url + path}  # Django checks it over HTTPS
        url = self.base_url + path  # http(s) only: simulation.check() made sure
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                code, body = response.status, response.read()
                location = response.headers["Location"]
        except urllib.error.HTTPError as exc:
            code, body, location = exc.code, exc.read(), exc.headers["Location"]
        except OSError as exc:
            raise CheckoutFailed(f"{method} {url} failed: {exc}") from exc
        expect(code, status, f"{method} {path}", body)
        return location or ""

    def _csrf_token(self) -> str | None:
        return next((c.value for c in self.cookies if c.name == "csrftoken"), None)


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back instead of following them: the checkout's tells the order id."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def allowed_host() -> str:
    """A host the settings allow: the test client's own, or else the first named one."""
    if validate_host("testserver", settings.ALLOWED_HOSTS):
        return "testserver"
    named = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host != "*"]
    return named[0] if named else "testserver"


def expect(status: int, wanted: int, what: str, body: bytes) -> None:
    """Raise :class:`CheckoutFailed` unless ``status`` is ``wanted``, quoting the page's error."""
    if status != wanted:
        raise CheckoutFailed(f"{what} answered {status}, not {wanted}{page_error(body)}")


def page_error(body: bytes) -> str:
    """``: <the message>`` from a storefront page's error paragraph, or ``""``."""
    found = re.search(rb'<p class="error"[^>]*>(.*?)</p>', body, re.DOTALL)
    return f": {html.unescape(found.group(1).decode(errors='replace')).strip()}" if found else ""


def order_id(location: str) -> int:
    """The order id in the checkout's redirect (``/orders/<pk>/``)."""
    try:
        match = resolve(urllib.parse.urlsplit(location).path)
    except Resolver404:
        match = None
    if match is None or match.url_name != "order":
        raise CheckoutFailed(f"POST /checkout/ redirected to {location!r}, not to an order")
    return int(match.kwargs["pk"])
