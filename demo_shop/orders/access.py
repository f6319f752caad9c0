"""Who may see an order: the visitor whose session placed it, and staff.

The demo has no customer accounts: checkout records the new order's id in
the visitor's session (which survives signing in), and every order page,
``status.json`` and the order WebSocket ask :func:`may_see` with the same
user and session. Anything else gets a 404 (pages) or a refused handshake
(socket), whether the order exists or not, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.db.models import QuerySet

from demo_shop.orders.models import Order

SESSION_KEY = "orders"
#: A session remembers its latest orders only (a long simulation places thousands).
REMEMBERED = 200
#: The largest id a database's signed 64-bit primary key can hold.
MAX_ID = 2**63 - 1


def remember(session: SessionBase, order: Order) -> None:
    """Let this session see ``order`` from now on."""
    session[SESSION_KEY] = [*session.get(SESSION_KEY, []), order.pk][-REMEMBERED:]


def parse_id(raw: Any) -> int | None:
    """An order id from a URL part, or None when it cannot be one (``-1``, ``abc``, 10**30)."""
    text = str(raw)
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def _is_staff(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.is_staff)


def visible(user: Any, session: SessionBase) -> QuerySet[Order]:
    """The orders this visitor may see: every one for staff, else their session's."""
    if _is_staff(user):
        return Order.objects.all()
    return Order.objects.filter(pk__in=session.get(SESSION_KEY, []))


def may_see(user: Any, session: SessionBase | None, raw_id: Any) -> bool:
    """Whether this visitor may see the order with id ``raw_id`` (a URL part)."""
    pk = parse_id(raw_id)
    if pk is None:
        return False
    return _is_staff(user) or (session is not None and pk in session.get(SESSION_KEY, []))
