from django.apps import AppConfig


class TutorialConfig(AppConfig):
    """The RabbitMQ RPC tutorial's Fibonacci service, served by ``rabbit_rpc``."""

    name = "demo_shop.tutorial"
    label = "tutorial"
