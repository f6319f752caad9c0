"""Storefront: products, cart, checkout, orders.

The cart page is an async view that prices the cart with ``await acall``;
the checkout page is a sync view that does the same with ``call``. Both say
in words when the catalog service does not answer, and offer a retry.
Every input goes through a form (:mod:`demo_shop.orders.forms`): a bad one
is shown again with its error, never a 500. A visitor sees only the orders
their session placed; staff see all (:mod:`demo_shop.orders.access`).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from demo_shop.catalog.models import Product
from demo_shop.orders import access, quotes
from demo_shop.orders.forms import MAX_QUANTITY, AddToCartForm, CheckoutForm
from demo_shop.orders.live import order_state
from demo_shop.orders.models import Order
from demo_shop.orders.services import EmptyCart, place_order

CART = "cart"


def products(request: HttpRequest) -> HttpResponse:
    return _products_page(request)


def _products_page(
    request: HttpRequest, refused: AddToCartForm | None = None, sku: str = ""
) -> HttpResponse:
    context = {
        "products": Product.objects.all(),
        "refused": refused,
        "refused_sku": sku,
        "max_quantity": MAX_QUANTITY,
    }
    return render(request, "shop/products.html", context, status=400 if refused else 200)


@require_POST
def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    cart = request.session.get(CART, {})
    form = AddToCartForm(request.POST)
    if form.is_valid():
        form.check_total(cart.get(product.sku, 0))
    if not form.is_valid():
        return _products_page(request, form, product.sku)
    cart[product.sku] = cart.get(product.sku, 0) + form.cleaned_data["quantity"]
    request.session[CART] = cart
    return redirect("cart")


@require_POST
def empty_cart(request: HttpRequest) -> HttpResponse:
    request.session[CART] = {}
    return redirect("cart")


async def cart(request: HttpRequest) -> HttpResponse:
    items = await request.session.aget(CART, {})
    answer = await quotes.aquote(items) if items else quotes.Answer(None)
    context = {"items": items, "quote": answer.quote, "problem": answer.problem}
    return render(request, "shop/cart.html", context, status=answer.status)


def checkout(request: HttpRequest) -> HttpResponse:
    items = request.session.get(CART, {})
    if request.method == "POST":
        return _place(request, items, CheckoutForm(request.POST))
    return _checkout_page(request, items, CheckoutForm(initial=CheckoutForm.EXAMPLE))


def _checkout_page(
    request: HttpRequest,
    items: dict[str, int],
    form: CheckoutForm,
    answer: quotes.Answer | None = None,
    **context: Any,
) -> HttpResponse:
    """The checkout page with ``answer`` or a fresh quote; its status unless ``status``."""
    if answer is None:
        answer = quotes.quote(items) if items else quotes.Answer(None)
    status = context.pop("status", answer.status)
    context.update(items=items, quote=answer.quote, problem=answer.problem, form=form)
    return render(request, "shop/checkout.html", context, status=status)


def _place(request: HttpRequest, items: dict[str, int], form: CheckoutForm) -> HttpResponse:
    if not items:
        return _empty(request)
    if not form.is_valid():
        return _checkout_page(request, items, form, status=400)
    answer = quotes.quote(items)
    refusal = quotes.refusal(answer)
    if refusal:
        return _checkout_page(request, items, form, answer, error=refusal, status=409)
    try:
        order = place_order(form.cleaned_data["email"], form.cleaned_data["card_number"], items)
    except EmptyCart:
        return _empty(request)
    request.session[CART] = {}
    access.remember(request.session, order)
    return redirect("order", pk=order.pk)


def _empty(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/checkout.html", {"error": "The cart is empty."}, status=400)


def orders(request: HttpRequest) -> HttpResponse:
    visible = access.visible(request.user, request.session)[:50]
    return render(request, "shop/orders.html", {"orders": visible})


def _visible_order(request: HttpRequest, pk: int, queryset: Any = Order.objects) -> Order:
    """The order ``pk`` if this visitor may see it; 404 otherwise (exists or not)."""
    if not access.may_see(request.user, request.session, pk):
        raise Http404("No such order.")
    return get_object_or_404(queryset, pk=pk)


def order(request: HttpRequest, pk: int) -> HttpResponse:
    queryset = Order.objects.prefetch_related("lines__product", "history", "timeline")
    found = _visible_order(request, pk, queryset)
    return render(request, "shop/order.html", {"order": found, "state": order_state(found)})


def order_status(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(order_state(_visible_order(request, pk)))
