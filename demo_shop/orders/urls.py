from django.urls import path

from demo_shop.orders import views

urlpatterns = [
    path("", views.products, name="products"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/<str:sku>/", views.add_to_cart, name="add_to_cart"),
    path("cart/empty/", views.empty_cart, name="empty_cart"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/", views.order, name="order"),
    path("orders/<int:pk>/status.json", views.order_status, name="order_status"),
]
