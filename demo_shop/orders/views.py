"""Storefront: products, cart, checkout, orders."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from demo_shop.catalog.models import Product
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


def cart(request: HttpRequest) -> HttpResponse:
    items = request.session.get(CART, {})
    lines = [
        (product, items[product.sku], product.price * items[product.sku])
        for product in Product.objects.filter(sku__in=items)
    ]
    total = sum((subtotal for _, _, subtotal in lines), 0)
    return render(request, "shop/cart.html", {"lines": lines, "total": total})


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    try:
        order = place_order(
            request.POST.get("email", ""),
            request.POST.get("card_number", ""),
            request.session.get(CART, {}),
        )
    except EmptyCart as exc:
        return render(request, "shop/cart.html", {"lines": [], "error": str(exc)}, status=400)
    request.session[CART] = {}
    return redirect("order", pk=order.pk)


def orders(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/orders.html", {"orders": Order.objects.all()[:50]})


def order(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Order.objects.prefetch_related("lines__product", "history"), pk=pk)
    return render(request, "shop/order.html", {"order": found})


def order_status(request: HttpRequest, pk: int) -> JsonResponse:
    found = get_object_or_404(Order, pk=pk)
    history = [
        {"status": change.status, "reason": change.reason, "at": change.at.isoformat()}
        for change in found.history.all()
    ]
    return JsonResponse({"id": found.pk, "status": found.status, "history": history})
