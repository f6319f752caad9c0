from django.contrib import admin

from demo_shop.orders.models import Order, OrderLine, StatusChange


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


class StatusChangeInline(admin.TabularInline):
    model = StatusChange
    extra = 0
    readonly_fields = ["status", "reason", "at"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "status", "stock_state", "payment_state", "reason", "created_at"]
    list_filter = ["status"]
    inlines = [OrderLineInline, StatusChangeInline]
