"""URLs of the demo shop."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo_shop.orders.urls")),
    path("rpc/", include("demo_shop.tutorial.urls")),
]
