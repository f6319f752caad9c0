"""URLs of the demo shop."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from rabbitbus.observability import views as rabbitbus_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo_shop.orders.urls")),
    path("rpc/", include("demo_shop.tutorial.urls")),
    # Prometheus scrapes the web process here (404 unless RABBITBUS_METRICS=1).
    path("metrics", rabbitbus_views.metrics),
    # Browsers ask for /favicon.ico on every page that links none (the admin's included).
    path("favicon.ico", RedirectView.as_view(url=static("shop/favicon.svg"), permanent=True)),
]
