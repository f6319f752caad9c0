"""A checkout view as a shop would write it: save the order in one transaction."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from tests.testapp.models import Order


class CheckoutRefused(Exception):
    pass


def checkout(request: HttpRequest) -> JsonResponse:
    try:
        with transaction.atomic():
            order = Order.objects.create(number=request.POST["number"], total="9.99")
            if request.POST.get("fail"):
                raise CheckoutRefused
    except CheckoutRefused:
        return JsonResponse({"error": "refused"}, status=400)
    return JsonResponse({"id": order.pk}, status=201)
