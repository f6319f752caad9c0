"""The demo's request span (demo_shop.telemetry.RequestSpanMiddleware, on when traces are
exported): one server span per request, current while the view runs, named by route."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_shop.telemetry import RequestSpanMiddleware


def test_the_view_runs_under_the_requests_server_span(spans: InMemorySpanExporter) -> None:
    seen = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(trace.get_current_span().get_span_context())
        return HttpResponse(status=201)

    RequestSpanMiddleware(view)(RequestFactory().post("/checkout/"))
    [span] = spans.get_finished_spans()
    assert seen == [span.get_span_context()]
    assert span.kind == trace.SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["url.path"] == "/checkout/"


def test_a_span_is_named_by_route_not_path(spans: InMemorySpanExporter) -> None:
    middleware = ["demo_shop.telemetry.RequestSpanMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        response = Client().get("/favicon.ico")
    assert response.status_code == 301
    [span] = spans.get_finished_spans()
    assert span.name == "GET favicon.ico"


#: The span context current in :func:`current_span_view`, per request.
seen_contexts: list[trace.SpanContext] = []


def current_span_view(request: HttpRequest) -> HttpResponse:
    seen_contexts.append(trace.get_current_span().get_span_context())
    return HttpResponse()


urlpatterns = [path("seen/", current_span_view)]


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=["demo_shop.telemetry.RequestSpanMiddleware"])
async def test_under_asgi_the_view_runs_under_the_span_too(spans: InMemorySpanExporter) -> None:
    """daphne serves the demo through Django's ASGI handler, which runs this sync
    middleware and the sync view in threads: the span context must reach the view."""
    seen_contexts.clear()
    response = await AsyncClient().get("/seen/")
    assert response.status_code == 200
    [span] = spans.get_finished_spans()
    assert span.name == "GET seen/"
    assert seen_contexts == [span.get_span_context()]
