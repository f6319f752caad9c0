"""The order admin: one source of truth for stock and payment, links to what the services made.

An order's stock and payment columns read the inventory's reservation and the
billing's payment (released, refunded ... as those services recorded it), so
the order list never contradicts the reservation and payment lists. The
saga's own notes (``stock_state``, ``payment_state``) are what it heard, an
input to its decisions, and stay off these pages.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html

from demo_shop.orders.models import Order, OrderLine, StatusChange, TimelineEntry


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


class StatusChangeInline(admin.TabularInline):
    model = StatusChange
    extra = 0
    readonly_fields = ["status", "reason", "at"]
    can_delete = False


class TimelineEntryInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    fields = readonly_fields = ["at", "message", "service", "outcome"]
    can_delete = False
    verbose_name_plural = "messages (the order's timeline)"

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


def related(order: Order, name: str) -> Model | None:
    """The order's reservation, payment or invoice, or None when there is none (yet)."""
    try:
        found: Model = getattr(order, name)
    except ObjectDoesNotExist:
        return None
    return found


def change_link(obj: Model | None, label: str) -> str:
    """A link to ``obj``'s admin page labelled ``label``; "-" when there is no ``obj``."""
    if obj is None:
        return "-"
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    # Not "payment" or "invoice": those name the reverse relations, which the admin would show.
    list_display = [
        "id", "email", "status", "stock_status", "payment_status", "invoice_link", "reason",
        "created_at",
    ]  # fmt: skip
    list_filter = ["status"]
    list_select_related = ["reservation", "payment", "invoice"]
    exclude = ["stock_state", "payment_state"]
    readonly_fields = ["stock_status", "payment_status", "invoice_link"]
    inlines = [OrderLineInline, StatusChangeInline, TimelineEntryInline]

    @admin.display(description="Stock (reservation)")
    def stock_status(self, order: Order) -> str:
        reservation = related(order, "reservation")
        return change_link(reservation, getattr(reservation, "status", ""))

    @admin.display(description="Payment")
    def payment_status(self, order: Order) -> str:
        payment = related(order, "payment")
        return change_link(payment, getattr(payment, "status", ""))

    @admin.display(description="Invoice")
    def invoice_link(self, order: Order) -> str:
        invoice = related(order, "invoice")
        return change_link(invoice, f"#{invoice.pk}" if invoice else "")


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "order", "message", "service", "outcome"]
    list_filter = ["service", "message"]
    list_select_related = ["order"]
