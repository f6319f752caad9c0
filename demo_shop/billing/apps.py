from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "demo_shop.billing"
    label = "billing"
    default_auto_field = "django.db.models.BigAutoField"
