"""OpenTelemetry traces across publish, consume and RPC: optional, and silent without a provider.

With ``opentelemetry-api`` installed and a tracer provider configured (the SDK's, or
any other), every publish carries the W3C ``traceparent`` (and ``tracestate``) of a
``publish`` span in its headers; workers and RPC servers extract it and run the
handler under a ``process`` span that is its child; ``rpc.call`` runs under a client
span whose context travels with the request. Spans follow the OpenTelemetry
messaging semantic conventions
(https://opentelemetry.io/docs/specs/semconv/messaging/rabbitmq/). Consumers are
push-based (``basic.consume``), so there is no separate ``receive`` span.

Without the package, ``on`` is False and each hook point costs one attribute check;
without a provider, the hooks return at once and nothing is added to any message.
Headers come from the wire: whatever they hold (garbage, huge strings, numbers,
tables), extraction gives up quietly and the message is handled as usual.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

logger = logging.getLogger("rabbitbus.observability.traces")

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the extra is not installed: tracing stays off
    trace = None  # type: ignore[assignment]

#: True when opentelemetry-api is importable: every hook point checks this first.
on = trace is not None

SYSTEM = "rabbitmq"
#: Longest header value read as trace context (a traceparent is 55 characters; W3C
#: tracestate is at most 512).
MAX_HEADER_LENGTH = 512
TRACER_NAME = "rabbitbus"

#: The tracer provider rabbitbus uses; None: OpenTelemetry's global one
#: (``opentelemetry.trace.set_tracer_provider``).
provider: Any = None

#: Seconds between two looks for a global provider while there is none.
RECHECK = 1.0

#: The tracer of each provider seen, by id, with the provider itself (so that an id a
#: dropped provider had cannot be taken for another's).
_tracer_of: dict[int, tuple[Any, Any]] = {}
_global = {"set": False, "next_look": 0.0}


def active() -> bool:
    """Whether a tracer provider is configured (else nothing is traced).

    A global provider is looked for at most every ``RECHECK`` seconds until one is set
    (OpenTelemetry lets a process set it once, so it stays): the hot paths do not pay
    for the look on every message.
    """
    if not on:
        return False
    if provider is not None or _global["set"]:
        return True
    now = time.monotonic()
    if now < _global["next_look"]:
        return False
    _global["next_look"] = now + RECHECK
    _global["set"] = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return bool(_global["set"])


def _tracer() -> Any:
    chosen = provider if provider is not None else trace.get_tracer_provider()
    known = _tracer_of.get(id(chosen))
    if known is None or known[0] is not chosen:
        known = _tracer_of[id(chosen)] = (chosen, chosen.get_tracer(TRACER_NAME))
    return known[1]


def _attributes(
    operation: str, destination: str, routing_key: str, message_id: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def inject_publish(
    exchange: str,
    routing_key: str,
    message_id: str | None,
    headers: MutableMapping[str, Any],
    *,
    operation: str = "publish",
) -> None:
    """Record a ``publish`` span (``create`` for an outbox row), a child of the current
    one, and write its context into ``headers``. Nothing without a provider, nor for
    the monitoring events a worker publishes in the background (outside any trace)."""
    if not active() or _background_event(exchange):
        return
    destination = exchange or "amq.default"
    kind = trace.SpanKind.PRODUCER if operation == "publish" else trace.SpanKind.INTERNAL
    with _tracer().start_as_current_span(
        f"{operation} {destination}",
        kind=kind,
        attributes=_attributes(operation, destination, routing_key, message_id),
    ):
        propagate.inject(headers)


def relay_spans(envelopes: Sequence[Any]) -> list[Any]:
    """Start the relay's ``publish`` span of each outbox message, a child of the
    ``create`` span its row carries, and put its context in the message's headers
    (the handlers become its children). End them with :func:`end_relay_spans` once
    the broker answered. Empty without a provider."""
    if not active():
        return []
    tracer = _tracer()
    started = []
    for envelope in envelopes:
        destination = envelope.exchange or "amq.default"
        span = tracer.start_span(
            f"publish {destination}",
            context=extract(envelope.headers),
            kind=trace.SpanKind.PRODUCER,
            attributes=_attributes(
                "publish", destination, envelope.routing_key, envelope.message_id
            ),
        )
        for field in propagate.get_global_textmap().fields:
            envelope.headers.pop(field, None)
        propagate.inject(envelope.headers, context=trace.set_span_in_context(span))
        started.append(span)
    return started


def end_relay_spans(spans: Sequence[Any], envelopes: Sequence[Any], failed: Any) -> None:
    """End the spans of :func:`relay_spans` (none: nothing to do); ``failed`` maps a
    message id to its error."""
    if not spans:
        return
    for span, envelope in zip(spans, envelopes, strict=True):
        error = failed.get(envelope.message_id)
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}"))
        span.end()


def relink_replay(
    exchange: str, routing_key: str, message_id: str | None, headers: MutableMapping[str, Any]
) -> None:
    """For a dead letter published again: a ``publish`` span in the current context (the
    admin request or command that replays it; a new trace outside any) with a link to
    the trace the message had, and its context in ``headers`` in place of the old one.

    A replay is a new cause (someone decided to run the message again), so the replayed
    handling is its own trace, one click away from the original through the link.
    Without a provider the headers are left as they are.
    """
    if not active():
        return
    original = extract(headers)
    links = []
    if original is not None:
        span_context = trace.get_current_span(original).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context, {"rabbitbus.link": "replay_of"}))
    for field in propagate.get_global_textmap().fields:
        headers.pop(field, None)
    destination = exchange or "amq.default"
    attributes = _attributes("publish", destination, routing_key, message_id)
    attributes["rabbitbus.replay"] = True
    with _tracer().start_as_current_span(
        f"publish {destination}", kind=trace.SpanKind.PRODUCER, links=links, attributes=attributes
    ):
        propagate.inject(headers)


def _background_event(exchange: str) -> bool:
    from rabbitbus.monitoring import events_exchange

    current = trace.get_current_span().get_span_context()
    return exchange == events_exchange() and not current.is_valid


def context_headers() -> dict[str, str]:
    """The current trace context as headers (for an RPC request); empty without one."""
    carrier: dict[str, str] = {}
    if active():
        propagate.inject(carrier)
    return carrier


def extract(headers: Any) -> Any:
    """The trace context ``headers`` carry, or None; never raises, whatever the wire sent."""
    if not isinstance(headers, dict):
        return None
    carrier = {}
    try:
        for field in propagate.get_global_textmap().fields:
            value = headers.get(field)
            if isinstance(value, bytes | bytearray):
                value = bytes(value).decode("ascii")
            if isinstance(value, str) and len(value) <= MAX_HEADER_LENGTH:
                carrier[field] = value
        return propagate.extract(carrier) if carrier else None
    except Exception:  # noqa: BLE001 - a bad header must not cost the message
        logger.debug("Ignoring unreadable trace context in message headers", exc_info=True)
        return None


@contextlib.contextmanager
def processing(
    destination: str, routing_key: str, message_id: str | None, headers: Any, consumer: str
) -> Iterator[Any]:
    """A ``process`` span for one delivery, a child of the context its headers carry;
    yields the span (None without a provider)."""
    if not active():
        yield None
        return
    attributes = _attributes("process", destination, routing_key, message_id)
    attributes["messaging.consumer.group.name"] = consumer
    with _tracer().start_as_current_span(
        f"process {destination}",
        context=extract(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span


def settled(span: Any, action: str, error: Any) -> None:
    """Note what became of a delivery: ``rabbitbus.outcome``, and an error status on failure."""
    if span is None:
        return
    span.set_attribute("rabbitbus.outcome", action)
    if error is not None:
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(text)[:200]))


@contextlib.contextmanager
def rpc_span(procedure: str, server: bool, headers: Any = None) -> Iterator[Any]:
    """An RPC span: the client's (current context as parent) or the server's (the
    request's context as parent). Yields None without a provider."""
    if not active():
        yield None
        return
    kind = trace.SpanKind.SERVER if server else trace.SpanKind.CLIENT
    attributes = {
        "rpc.system": "rabbitbus",
        "rpc.method": procedure,
        "messaging.system": SYSTEM,
    }
    with _tracer().start_as_current_span(
        procedure,
        context=extract(headers) if server else None,
        kind=kind,
        attributes=attributes,
    ) as span:
        yield span


def in_this_context(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` to run in another thread with the current trace context."""
    if not active():
        return function
    current = otel_context.get_current()

    def run(*args: Any) -> Any:
        token = otel_context.attach(current)
        try:
            return function(*args)
        finally:
            otel_context.detach(token)

    return run
