from django.contrib import admin

from demo_shop.catalog.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "stocktake"]
    list_editable = ["stocktake"]
    search_fields = ["sku", "name"]
