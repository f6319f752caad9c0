"""A checkout in the demo shop is one trace (issue 19): the view, its ``catalog.quote``
call, the outbox rows, the relay's publishes, the inventory, billing and saga handlers,
and the invoice task's message, on a real RabbitMQ with the SDK's in-memory exporter.

The web process's own span stands in for what OpenTelemetry's Django instrumentation
records around a request. On PostgreSQL, as test_flow_on_broker.py (SQLite locks a
table the worker threads and the relay write at once).
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_shop.orders.models import Order
from rabbitbus.observability import traces
from rabbitbus.outbox.relay import Relay
from rabbitbus.testing import RabbitBroker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def relay_until(done: Any, timeout: float = 30) -> None:
    """Relay the outbox (rabbit_outbox's job) until ``done()``."""
    relay = Relay()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay.run_once()
        if done():
            return
        time.sleep(0.05)
    pytest.fail(f"not done after {timeout}s")


def by_id(finished: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in finished}


def ancestry(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    """The names from ``span`` up to its root, every parent recorded in this test."""
    names = [span.name]
    while span.parent is not None:
        span = index[span.parent.span_id]
        names.append(span.name)
    return names


def test_a_checkout_is_one_trace_from_the_view_to_the_last_handler(
    rabbit_broker: RabbitBroker, spans: InMemorySpanExporter
) -> None:
    call_command("shop_seed", stdout=io.StringIO())
    rabbit_broker.worker()  # every consumer of the shop and the catalog.quote procedure
    client = Client()
    client.post("/cart/add/RB-MUG/", {"quantity": 2})
    with traces.provider.get_tracer("django").start_as_current_span(
        "POST /checkout/", kind=trace.SpanKind.SERVER
    ) as view:
        response = client.post(
            "/checkout/", {"email": "t@example.com", "card_number": "4242424242424242"}
        )
    assert response.status_code == 302, response.content
    order = Order.objects.get()

    def confirmed_and_invoiced() -> bool:  # the invoice task is published to amq.default
        order.refresh_from_db()
        invoiced = any(span.name == "publish amq.default" for span in spans.get_finished_spans())
        return order.status == Order.Status.CONFIRMED and invoiced

    relay_until(confirmed_and_invoiced)
    finished = spans.get_finished_spans()
    index = by_id(list(finished))
    view_id = view.get_span_context()
    # One trace, and every span reaches the view through recorded parents.
    assert {span.context.trace_id for span in finished} == {view_id.trace_id}
    chains = [ancestry(span, index) for span in finished]
    assert all(chain[-1] == "POST /checkout/" for chain in chains), chains
    # The quote: a client span in the view, the procedure's server span its child.
    quote = [chain for chain in chains if chain[0] == "catalog.quote"]
    assert sorted(quote) == [
        ["catalog.quote", "POST /checkout/"],
        ["catalog.quote", "catalog.quote", "POST /checkout/"],
    ]
    # The order's row: created in the view, published by the relay, handled by
    # inventory and billing; their answers reach the saga the same way.
    placed = ["publish shop", "create shop", "POST /checkout/"]
    assert ["process inventory.orders", *placed] in chains
    assert ["process billing.orders", *placed] in chains
    saga = [chain for chain in chains if chain[0] == "process orders.saga"]
    assert {chain[3] for chain in saga} >= {"process inventory.orders", "process billing.orders"}
    assert all(chain[1:3] == ["publish shop", "create shop"] for chain in saga), saga
    # The saga's last step enqueues the invoice email task, in the same trace.
    (task,) = [chain for chain in chains if chain[0] == "publish amq.default"]
    assert task[1] == "process orders.saga"
    assert order.status == Order.Status.CONFIRMED
