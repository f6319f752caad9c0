"""Visitors of the demo shop for access tests: an order's owner, a stranger, staff."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.test import Client

from demo_shop.orders import access
from demo_shop.orders.models import Order

ORIGIN = (b"origin", b"http://testserver")


def owner(*orders: Order) -> Client:
    """A client whose session placed ``orders`` (as checkout records it)."""
    client = Client()
    session = client.session  # a new session, its cookie set on the client
    for order in orders:
        access.remember(session, order)
    session.save()
    return client


def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_user(f"staff-{uuid.uuid4().hex[:8]}", is_staff=True))
    return client


def cookie(client: Client) -> tuple[bytes, bytes]:
    """The ``Cookie`` header a browser with ``client``'s session sends on a WebSocket."""
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
