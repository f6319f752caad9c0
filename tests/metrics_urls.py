"""URLs of the metrics tests' web processes: the metrics view, and a view that publishes."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

import rabbitbus
from rabbitbus.observability import views


def publish(request: HttpRequest, exchange: str) -> HttpResponse:
    return HttpResponse(rabbitbus.publish(exchange, "web.published", {"from": "web"}))


urlpatterns = [
    path("metrics", views.metrics),
    path("publish/<str:exchange>/", publish),
]
