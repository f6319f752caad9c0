"""Storefront: products, cart, checkout, orders.

The cart page is an async view that prices the cart with ``await acall``;
the checkout page is a sync view that does the same with ``call``. Both say
in words when the catalog service does not answer, and offer a retry.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from demo_shop.catalog.models import Product
from demo_shop.orders import quotes
from demo_shop.orders.live import order_state
from demo_shop.orders.models import Order
from demo_shop.orders.services import EmptyCart, place_order

CART = "cart"


def products(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/products.html", {"products": Product.objects.all()})


@require_POST
def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    cart = request.session.get(CART, {})
    cart[sku] = cart.get(sku, 0) + max(1, int(request.POST.get("quantity", 1) or 1))
    request.session[CART] = cart
    return redirect("cart")


async def cart(request: HttpRequest) -> HttpResponse:
    items = await request.session.aget(CART, {})
    quote, problem = await quotes.aquote(items) if items else (None, "")
    context = {"items": items, "quote": quote, "problem": problem}
    return render(request, "shop/cart.html", context, status=503 if problem else 200)


def checkout(request: HttpRequest) -> HttpResponse:
    items = request.session.get(CART, {})
    if request.method == "POST":
        return _place(request, items)
    quote, problem = quotes.quote(items) if items else (None, "")
    context = {"items": items, "quote": quote, "problem": problem}
    return render(request, "shop/checkout.html", context, status=503 if problem else 200)


def _place(request: HttpRequest, items: dict[str, int]) -> HttpResponse:
    try:
        order = place_order(
            request.POST.get("email", ""), request.POST.get("card_number", ""), items
        )
    except EmptyCart as exc:
        return render(request, "shop/checkout.html", {"error": str(exc)}, status=400)
    request.session[CART] = {}
    return redirect("order", pk=order.pk)


def orders(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/orders.html", {"orders": Order.objects.all()[:50]})


def order(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(
        Order.objects.prefetch_related("lines__product", "history", "timeline"), pk=pk
    )
    return render(request, "shop/order.html", {"order": found, "state": order_state(found)})


def order_status(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(order_state(get_object_or_404(Order, pk=pk)))
