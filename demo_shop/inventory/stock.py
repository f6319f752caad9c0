"""Reserving and releasing stock: conditional updates, all lines or none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import F

from demo_shop.catalog.models import Product
from demo_shop.inventory.models import Reservation


class OutOfStock(Exception):  # noqa: N818 - named like the domain
    """A line asks for more than is on the shelf."""


class StocktakeInProgress(RuntimeError):  # noqa: N818 - named like the domain
    """A product is being counted: nothing can be reserved until its stocktake is over.

    Not the order's fault, so not a rejection: the handler fails, the message is
    retried and then dead-lettered, to be replayed once the stocktake is over.
    """


def reserve(order_id: int, lines: Iterable[Mapping[str, Any]]) -> Reservation:
    """Take every line's quantity off the shelf, or none of them.

    Returns the order's reservation: ``reserved``, or ``rejected`` with the
    reason. Idempotent: an order with a reservation keeps the one it has.
    Raises :class:`StocktakeInProgress` while a product of the order is on stocktake.
    """
    existing = Reservation.objects.filter(order_id=order_id).first()
    if existing is not None:
        return existing
    wanted = [{"sku": line["sku"], "quantity": int(line["quantity"])} for line in lines]
    _check_no_stocktake([line["sku"] for line in wanted])
    try:
        with transaction.atomic():  # a savepoint: a short line undoes the earlier ones
            for line in wanted:
                _take(line["sku"], line["quantity"])
    except OutOfStock as exc:
        return Reservation.objects.create(
            order_id=order_id, lines=wanted, status=Reservation.Status.REJECTED, reason=str(exc)
        )
    return Reservation.objects.create(order_id=order_id, lines=wanted)


def release(order_id: int) -> bool:
    """Put a reserved order's stock back; False if there was nothing to release."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None or reservation.status != Reservation.Status.RESERVED:
        return False
    for line in reservation.lines:
        Product.objects.filter(sku=line["sku"]).update(stock=F("stock") + line["quantity"])
    reservation.status = Reservation.Status.RELEASED
    reservation.save(update_fields=["status"])
    return True


def _check_no_stocktake(skus: list[str]) -> None:
    counted = list(
        Product.objects.filter(sku__in=skus, stocktake=True).values_list("sku", flat=True)
    )
    if counted:
        raise StocktakeInProgress(
            f"{', '.join(counted)} is on stocktake, so it cannot be reserved. Untick "
            "'Stocktake' on the product in the admin, then replay this message."
        )


def described(order_id: int) -> str:
    """The order's reserved lines in words, e.g. ``2 x RB-MUG, 1 x RB-TEE``."""
    reservation = Reservation.objects.get(order_id=order_id)
    return ", ".join(f"{line['quantity']} x {line['sku']}" for line in reservation.lines)


def _take(sku: str, quantity: int) -> None:
    # One conditional UPDATE: two workers can never both take the last unit.
    taken = Product.objects.filter(sku=sku, stock__gte=quantity).update(stock=F("stock") - quantity)
    if not taken:
        left = Product.objects.filter(sku=sku).values_list("stock", flat=True).first() or 0
        if not left:
            raise OutOfStock(f"{sku} is out of stock.")
        raise OutOfStock(f"Not enough {sku}: only {left} left, {quantity} wanted.")
