"""The story of an order's messages: who handled which message, when, with what outcome.

Every shop consumer is wrapped in :func:`records`: its handler returns the
outcome in words, and the entry is written in the handler's own transaction
(the consumers are idempotent, so that is the inbox's transaction), so a
message that fails, is retried or dead-lettered leaves no entry until a run
of it succeeds. Checkout records the ``order.placed`` it sends.
A bridge announces every new entry on ``order.status.<id>`` so the order page
refreshes live (see ``orders/rabbit.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from demo_shop.orders.models import Order, TimelineEntry
from rabbitbus import ReceivedMessage

Handler = Callable[[ReceivedMessage], str]


def record(order_id: int, message: str, service: str, outcome: str) -> TimelineEntry:
    """Add one entry to order ``order_id``'s timeline (in the caller's transaction)."""
    return TimelineEntry.objects.create(
        order_id=order_id, message=message, service=service, outcome=outcome[:200]
    )


def records(service: str) -> Callable[[Handler], Callable[[ReceivedMessage], None]]:
    """Decorate a consumer whose handler returns its outcome: each message it handles is
    recorded on the timeline of the body's ``order_id`` as handled by ``service``."""

    def decorate(handler: Handler) -> Callable[[ReceivedMessage], None]:
        @functools.wraps(handler)
        def recorded(message: ReceivedMessage) -> None:
            outcome = handler(message)
            record(message.body["order_id"], message.routing_key, service, outcome)

        return recorded

    return decorate


def settled(order: Order, recorded: Sequence[TimelineEntry] | None = None) -> bool:
    """Whether the order's story is over: confirmed, or cancelled with both services heard
    and every compensation the saga asked for handled (no more messages will come).

    ``recorded``: the order's timeline as already read, so that a page shows the entries it
    judged by (read again, it may hold an entry committed meanwhile: the page would call
    the story over and never show that entry)."""
    if order.status == Order.Status.CONFIRMED:
        return True
    if order.status != Order.Status.CANCELLED or "" in (order.stock_state, order.payment_state):
        return False
    expected = set()
    if order.stock_state == Order.StockState.RESERVED:
        expected.add("stock.release")
    if order.payment_state == Order.PaymentState.CAPTURED:
        expected.add("payment.refund")
    if recorded is None:
        recorded = list(order.timeline.all())
    return expected <= {entry.message for entry in recorded}


def clock(moment: datetime) -> str:
    """``moment`` as the shop's local time of day, to the millisecond."""
    return timezone.localtime(moment).strftime("%H:%M:%S.%f")[:-3]


def entries(order: Order, recorded: Sequence[TimelineEntry]) -> list[dict[str, Any]]:
    """The order's timeline (its entries ``recorded``, as read once) for its page: message,
    service, outcome, its time (ISO and the local ``clock``), seconds ``after`` the order
    was placed, and whether it ``undoes``."""
    return [
        {
            "message": entry.message,
            "service": entry.service,
            "outcome": entry.outcome,
            "at": entry.at.isoformat(),
            "clock": clock(entry.at),
            "after": round((entry.at - order.created_at).total_seconds(), 3),
            "undoes": entry.undoes,
        }
        for entry in recorded
    ]
