from django.contrib import admin

from demo_shop.inventory.models import Reservation


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order", "status", "reason", "created_at"]
    list_filter = ["status"]
