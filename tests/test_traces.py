"""rabbitbus.observability.traces with the SDK's in-memory exporter, on the real broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pamqp.commands import Basic
from pamqp.header import ContentHeader

import rabbitbus
from rabbitbus import outbox, rpc
from rabbitbus.exceptions import Reject
from rabbitbus.messages import Message, ReceivedMessage, build
from rabbitbus.observability import traces
from rabbitbus.outbox.relay import Relay
from rabbitbus.runtime.service import Runtime
from rabbitbus.transport import connections, frames
from tests.broker import Broker, unique
from tests.consuming import drain, drain_until
from tests.rpc_support import serving
from tests.workers import ThreadRuntime, spec

pytestmark = pytest.mark.django_db(transaction=True)  # workers write heartbeats

#: A valid traceparent of another service (W3C Trace Context, version 00).
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def tracer() -> Any:
    """The test's own tracer (a "view" span), from the provider rabbitbus uses."""
    return traces.provider.get_tracer("test")


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name.startswith(prefix)]


def consumer_runtime(queue: str, handler: Any, **options: Any) -> ThreadRuntime:
    options.setdefault("attempts", 1)
    consumer = spec(queue, handler, **options)
    return ThreadRuntime(lambda: Runtime([_service(consumer)]))


def _service(consumer: Any) -> Any:
    from rabbitbus.consuming.worker import ConsumerService

    return ConsumerService(consumer)


def test_without_a_provider_nothing_is_added_to_a_message() -> None:
    assert not traces.active()
    envelope = build(Message("x", "k", {}))
    assert envelope.headers == {}
    assert traces.context_headers() == {}
    assert traces.extract({"traceparent": PARENT}) is not None  # reading needs no provider


def test_a_publish_carries_the_context_of_its_publish_span(
    spans: InMemorySpanExporter, broker: Broker, exchange: str, queue: str
) -> None:
    with tracer().start_as_current_span("view") as view:
        rabbitbus.publish(exchange, "order.placed", {"n": 1})
    (delivered,) = drain(broker, queue)
    (publish,) = named(spans, "publish")
    assert publish.parent is not None
    assert publish.parent.span_id == view.get_span_context().span_id
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.name == f"publish {exchange}"
    attributes = dict(publish.attributes or {})
    assert attributes["messaging.system"] == "rabbitmq"
    assert attributes["messaging.destination.name"] == exchange
    assert attributes["messaging.rabbitmq.destination.routing_key"] == "order.placed"
    assert attributes["messaging.message.id"] == delivered.message_id
    context = publish.get_span_context()
    assert delivered.headers["traceparent"].startswith(
        f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    )


async def test_an_async_publish_is_traced_too(
    spans: InMemorySpanExporter, broker: Broker, exchange: str, queue: str
) -> None:
    try:
        await rabbitbus.apublish(exchange, "a.b", {})
    finally:
        await connections.aclose_all()
    (delivered,) = drain(broker, queue)
    (publish,) = named(spans, "publish")
    assert delivered.headers["traceparent"].split("-")[1] == f"{publish.context.trace_id:032x}"


def test_publish_then_consume_is_one_trace_with_the_handler_a_child(
    spans: InMemorySpanExporter, broker: Broker
) -> None:
    queue = unique("traces.q")
    seen: list[Any] = []

    def handler(message: ReceivedMessage) -> None:
        seen.append(trace.get_current_span().get_span_context())
        rabbitbus.publish("", f"{queue}.next", {"then": True}, mandatory=False)

    with consumer_runtime(queue, handler).start(broker):
        with tracer().start_as_current_span("view"):
            rabbitbus.publish("", queue, {"n": 1})
        assert broker.wait_for(lambda: len(named(spans, "process")) == 1, timeout=15)
    (view,) = named(spans, "view")
    key = "messaging.rabbitmq.destination.routing_key"
    publishes = {dict(span.attributes or {})[key]: span for span in named(spans, "publish")}
    (process,) = named(spans, "process")
    trace_id = view.context.trace_id
    assert {span.context.trace_id for span in [*publishes.values(), process]} == {trace_id}
    first = publishes[queue]
    assert first.parent.span_id == view.context.span_id  # type: ignore[union-attr]
    assert process.parent.span_id == first.context.span_id  # type: ignore[union-attr]
    assert process.kind == trace.SpanKind.CONSUMER
    assert process.name == f"process {queue}"
    assert dict(process.attributes or {})["rabbitbus.outcome"] == "ack"
    # The handler ran (in a worker thread) inside the process span; its publish is a child.
    assert seen[0].span_id == process.context.span_id
    assert len(named(spans, "publish")) == 2
    handler_publish = publishes[f"{queue}.next"]
    assert handler_publish.parent.span_id == process.context.span_id  # type: ignore[union-attr]


def test_a_retried_message_keeps_its_trace(spans: InMemorySpanExporter, broker: Broker) -> None:
    queue = unique("traces.retry")
    attempts: list[int] = []

    def handler(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        if message.attempt == 1:
            raise ValueError("once")

    with consumer_runtime(queue, handler, attempts=2, backoff=(0.05, 0.05)).start(broker):
        with tracer().start_as_current_span("view") as view:
            rabbitbus.publish("", queue, {})
        assert broker.wait_for(lambda: len(named(spans, "process")) == 2, timeout=15)
    first, second = sorted(named(spans, "process"), key=lambda span: span.start_time or 0)
    assert {first.context.trace_id, second.context.trace_id} == {view.get_span_context().trace_id}
    assert first.parent.span_id == second.parent.span_id  # type: ignore[union-attr]
    assert dict(first.attributes or {})["rabbitbus.outcome"] == "retry"
    assert first.status.status_code == trace.StatusCode.ERROR
    assert attempts == [1, 2]


def test_a_replayed_dead_letter_is_a_new_trace_linked_to_the_original(
    spans: InMemorySpanExporter, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rabbitbus.monitoring import deadletters

    queue = unique("traces.replay")
    monkeypatch.setattr(deadletters, "known", lambda: [f"{queue}.dlq"])  # not in settings
    attempts: list[int] = []

    def handler(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        if len(attempts) == 1:
            raise Reject("the first time")

    with consumer_runtime(queue, handler).start(broker):
        with tracer().start_as_current_span("view") as view:
            rabbitbus.publish("", queue, {"n": 1})
        assert broker.wait_for(lambda: broker.queue_depth(f"{queue}.dlq") == 1, timeout=15)
        with tracer().start_as_current_span("admin replay") as admin:
            assert deadletters.replay(f"{queue}.dlq") == 1
        assert broker.wait_for(lambda: len(named(spans, "process")) == 2, timeout=15)
    original, replayed = sorted(named(spans, "process"), key=lambda span: span.start_time or 0)
    assert original.context.trace_id == view.get_span_context().trace_id
    # The replay's publish span is a child of the admin action and links to the original.
    (replay,) = [
        span for span in named(spans, "publish") if (span.attributes or {}).get("rabbitbus.replay")
    ]
    assert replay.parent.span_id == admin.get_span_context().span_id  # type: ignore[union-attr]
    assert replayed.parent.span_id == replay.context.span_id  # type: ignore[union-attr]
    assert (
        replayed.context.trace_id == admin.get_span_context().trace_id != original.context.trace_id
    )
    (first_publish,) = [
        span
        for span in named(spans, "publish")
        if span.parent and span.parent.span_id == view.get_span_context().span_id
    ]
    [link] = replay.links
    assert link.context.span_id == first_publish.context.span_id
    assert link.context.trace_id == original.context.trace_id
    assert attempts == [1, 1]


BAD_HEADERS = [
    {"traceparent": "garbage"},
    {"traceparent": "00-" + "f" * 10_000},
    {"traceparent": 12345},
    {"traceparent": b"\xff\xfe\x00"},
    {"traceparent": ["00", "x"]},
    {"traceparent": {"nested": "table"}},
    {"traceparent": None, "tracestate": 35},
    {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
    {"traceparent": "zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
def test_bad_trace_headers_give_no_parent(
    spans: InMemorySpanExporter, headers: dict[str, Any]
) -> None:
    context = traces.extract(headers)
    assert context is None or not trace.get_current_span(context).get_span_context().is_valid


def test_an_oversize_tracestate_is_dropped_and_the_traceparent_kept(
    spans: InMemorySpanExporter,
) -> None:
    context = traces.extract({"traceparent": PARENT.encode(), "tracestate": "k=" + "v" * 5000})
    span_context = trace.get_current_span(context).get_span_context()
    assert f"{span_context.trace_id:032x}" == PARENT.split("-")[1]
    assert len(span_context.trace_state) == 0
    assert traces.extract("not a table") is None


def test_bad_trace_headers_never_break_a_worker(
    spans: InMemorySpanExporter, broker: Broker
) -> None:
    import pika

    queue = unique("traces.bad")
    handled: list[int] = []

    def handler(message: ReceivedMessage) -> None:
        if message.body["n"] < 0:
            raise Reject("control: a real failure still dead-letters")
        handled.append(message.body["n"])

    with consumer_runtime(queue, handler).start(broker):
        with broker.channel() as channel:  # raw pika: rabbitbus.publish would set its own
            for n, headers in enumerate([*BAD_HEADERS, {"traceparent": PARENT}, {}]):
                properties = pika.BasicProperties(
                    content_type="application/json", message_id=f"m{n}", headers=headers
                )
                channel.basic_publish("", queue, json.dumps({"n": n}).encode(), properties)
            properties = pika.BasicProperties(content_type="application/json", message_id="x")
            channel.basic_publish("", queue, b'{"n": -1}', properties)
        total = len(BAD_HEADERS) + 3
        assert broker.wait_for(lambda: len(named(spans, "process")) == total, timeout=15)
    assert sorted(handled) == list(range(len(BAD_HEADERS) + 2))
    assert [m.payload for m in drain_until(broker, f"{queue}.dlq", 1)] == [{"n": -1}]
    by_id = {dict(s.attributes or {})["messaging.message.id"]: s for s in named(spans, "process")}
    parent_trace = int(PARENT.split("-")[1], 16)
    assert by_id[f"m{len(BAD_HEADERS)}"].context.trace_id == parent_trace  # the good one
    for n in range(len(BAD_HEADERS)):  # each bad one starts a trace of its own
        assert by_id[f"m{n}"].parent is None
        assert by_id[f"m{n}"].context.trace_id != parent_trace
    assert dict(by_id["x"].attributes or {})["rabbitbus.outcome"] == "dead-letter"


def test_an_rpc_call_is_one_trace_from_client_to_procedure(spans: InMemorySpanExporter) -> None:
    with serving("test.echo", "test.aecho"):
        with tracer().start_as_current_span("view") as view:
            assert rpc.call("test.echo", 1, timeout=10) == {"args": [1], "kwargs": {}}
        assert broker_wait(lambda: len(named(spans, "test.echo")) == 2)
    client = next(s for s in named(spans, "test.echo") if s.kind == trace.SpanKind.CLIENT)
    server = next(s for s in named(spans, "test.echo") if s.kind == trace.SpanKind.SERVER)
    assert client.parent.span_id == view.get_span_context().span_id  # type: ignore[union-attr]
    assert server.parent.span_id == client.context.span_id  # type: ignore[union-attr]
    assert server.context.trace_id == view.get_span_context().trace_id


async def test_an_async_rpc_call_is_one_trace(spans: InMemorySpanExporter) -> None:
    with serving("test.aecho"):
        try:
            assert await rpc.acall("test.aecho", 7, timeout=10) == 7
        finally:
            await connections.aclose_all()
        assert broker_wait(lambda: len(named(spans, "test.aecho")) == 2)
    client = next(s for s in named(spans, "test.aecho") if s.kind == trace.SpanKind.CLIENT)
    server = next(s for s in named(spans, "test.aecho") if s.kind == trace.SpanKind.SERVER)
    assert server.parent.span_id == client.context.span_id  # type: ignore[union-attr]


def broker_wait(predicate: Any, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_traced_request_marshals_as_pamqp_does() -> None:
    trace_headers = {"traceparent": PARENT, "tracestate": "a=1"}
    ours = frames.publish(
        1, "rpc.x", b"{}", body_frame_max=4088, content_type="application/json",
        correlation_id="c", message_type="rpc", deadline=2**40, trace=trace_headers,
    )  # fmt: skip
    header = ContentHeader(
        properties=Basic.Properties(
            content_type="application/json",
            headers={frames.DEADLINE_HEADER: 2**40, **trace_headers},
            delivery_mode=1,
            correlation_id="c",
            message_type="rpc",
        ),
        body_size=2,
    )
    assert header.marshal() in ours


def test_an_outbox_row_carries_the_trace_of_the_request_that_wrote_it(
    spans: InMemorySpanExporter, broker: Broker, exchange: str, queue: str
) -> None:
    with tracer().start_as_current_span("view") as view:
        outbox.enqueue(exchange, "order.placed", {"n": 1})
    assert Relay().run_once() == 1  # later, elsewhere, outside any span
    (delivered,) = drain(broker, queue)
    # The row is created in the view's trace; the relay's publish is its child.
    (create,) = named(spans, "create")
    (publish,) = named(spans, "publish")
    assert create.parent.span_id == view.get_span_context().span_id  # type: ignore[union-attr]
    assert dict(create.attributes or {})["messaging.operation.type"] == "create"
    assert publish.parent.span_id == create.context.span_id  # type: ignore[union-attr]
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.end_time is not None and publish.status.status_code == trace.StatusCode.UNSET
    _, trace_id, span_id, _ = delivered.headers["traceparent"].split("-")
    assert trace_id == f"{view.get_span_context().trace_id:032x}"
    assert span_id == f"{publish.context.span_id:016x}"


def test_a_relayed_row_the_broker_refuses_ends_its_span_in_error(
    spans: InMemorySpanExporter, broker: Broker
) -> None:
    with tracer().start_as_current_span("view"):
        outbox.enqueue(unique("no.such.exchange"), "x", {"n": 1})
    Relay().run_once()
    (publish,) = named(spans, "publish")
    assert publish.status.status_code == trace.StatusCode.ERROR
    assert "ExchangeNotFound" in (publish.status.description or "")
