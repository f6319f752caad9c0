from django.urls import path

from demo_shop.tutorial import views

urlpatterns = [
    path("fib/<int:n>/", views.fib_sync, name="fib"),
    path("afib/<int:n>/", views.fib_async, name="afib"),
]
