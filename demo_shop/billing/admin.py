from django.contrib import admin

from demo_shop.billing.models import Invoice, Payment


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "amount", "emailed_at"]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["order", "amount", "status", "created_at"]
    list_filter = ["status"]
