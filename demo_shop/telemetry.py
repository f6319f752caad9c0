"""Traces from the demo shop to an OTLP collector, when one is configured.

``demo_shop/settings.py`` calls :func:`export_traces` and adds
:class:`RequestSpanMiddleware` only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(``docker compose --profile observability`` points it at Jaeger); otherwise nothing
here is imported and rabbitbus stays silent. The exporter reads the endpoint (and
the other ``OTEL_EXPORTER_OTLP_*`` variables) itself:
https://opentelemetry.io/docs/specs/otel/protocol/exporter/
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from demo_shop import processes

if TYPE_CHECKING:  # settings.py imports this module: nothing of Django's at import
    from django.http import HttpRequest, HttpResponseBase

SERVICE = "demo_shop"


def service_name(argv: list[str]) -> str:
    """``demo_shop-<process>`` for the shop's worker processes, else ``demo_shop-web``:
    each shows as its own service in the trace viewer."""
    for name, args in processes.WORKERS.items():
        if tuple(argv[1 : 1 + len(args)]) == args:
            return f"{SERVICE}-{name}"
    return f"{SERVICE}-web"


@functools.cache
def export_traces() -> None:
    """Set a global SDK tracer provider that sends spans over OTLP/HTTP, once per process.

    ``OTEL_SERVICE_NAME`` wins over the name from the command line.
    """
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name(sys.argv)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


class RequestSpanMiddleware:
    """A server span around each request, current while the view runs: what the view
    publishes, writes to the outbox or calls joins the request's trace. A stand-in for
    OpenTelemetry's Django instrumentation, without its dependencies; named by route
    (``GET orders/<int:pk>/``), never by path, so names stay few."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        from opentelemetry import trace

        from rabbitbus.observability import traces

        chosen = traces.provider or trace.get_tracer_provider()
        tracer = chosen.get_tracer("demo_shop")
        attributes = {"http.request.method": request.method or "", "url.path": request.path}
        kind = trace.SpanKind.SERVER
        with tracer.start_as_current_span(request.method or "HTTP", kind=kind) as span:
            span.set_attributes(attributes)
            response = self.get_response(request)
            route = getattr(request.resolver_match, "route", None)
            if route is not None:
                span.update_name(f"{request.method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", response.status_code)
            return response
