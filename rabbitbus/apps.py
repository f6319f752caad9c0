"""The app config: registers checks and discovers ``<app>/rabbit.py``. No I/O."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RabbitBusConfig(AppConfig):
    name = "rabbitbus"
    verbose_name = "RabbitMQ"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from rabbitbus import checks, error_reports, observability  # noqa: F401 - registers checks
        from rabbitbus.monitoring import register_topology
        from rabbitbus.outbox import bridges

        checks.register()
        register_topology()  # the events exchange of the live dashboard
        from rabbitbus.tasks.options import register_topology as register_task_queues

        register_task_queues()  # the queues of TASKS backends that are RabbitMQBackend
        observability.setup()  # metrics on if RABBITBUS["METRICS"] says so; registers checks

        # Handlers live in <app>/rabbit.py (Channels already owns consumers.py).
        autodiscover_modules("rabbit")
        bridges.connect_all()
