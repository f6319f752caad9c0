"""How the demo shop's services talk: one topic exchange, messages through the outbox.

Every message a service emits is written to the outbox in the same database
transaction as the service's own change (the handler's transaction, for a
consumer), so a change never goes without its message and a rolled-back
change never sends one. Messages about one order share the outbox aggregate
``orders.order:<id>`` (as the checkout bridge's do), so the relay publishes
them in the order they were written.

The flow (routing keys on the ``shop`` exchange)::

    checkout ── order.placed ──┬─> inventory: reserve ── stock.reserved | stock.rejected ──┐
                               └─> billing:   charge  ── payment.captured | payment.declined ┤
                                                                                            v
    billing: invoice <───────── order.paid ── orders (the saga) <── invoice.issued ────────┘
    inventory: release <── stock.release ──┘  ├── payment.refund ──> billing: refund
                                              └── confirmed: enqueues the invoice email task

Card numbers never travel in messages: billing reads them from the order.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from rabbitbus import outbox

EXCHANGE = "shop"


def handlers_at_once() -> int:
    """How many messages each service handles at a time. Its handlers mostly wait for the
    database: PostgreSQL serves eight at once, where SQLite lets one writer in at a time
    and more threads only queue for its lock (bench/shop.sh, docs/benchmarks.md: closed loop
    at 20 shoppers, p50 0.85 s with eight against 5.6 s with four on PostgreSQL; 27.5 against
    34.1 orders/s with eight against four on SQLite)."""
    return 4 if "sqlite" in settings.DATABASES["default"]["ENGINE"] else 8


#: What every shop consumer shares: an idempotent inbox, quick retries, and a
#: few handlers at a time (the saga locks the order row, stock updates are
#: conditional, so concurrent handlers are safe).
CONSUMER_OPTIONS: dict[str, Any] = {
    "idempotent": True,
    "backoff": (0.2, 10),
    "concurrency": handlers_at_once(),
    "prefetch": 32,
}


def emit(routing_key: str, order_id: int, **payload: Any) -> str:
    """Write a message about order ``order_id`` to the outbox; returns its id."""
    body = {"order_id": order_id, **payload}
    return outbox.enqueue(EXCHANGE, routing_key, body, aggregate=f"orders.order:{order_id}")
