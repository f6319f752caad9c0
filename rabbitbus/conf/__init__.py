"""The one ``RABBITBUS`` setting: its schema, lazy reads, reset on change.

Every key and default is declared once, in :mod:`rabbitbus.conf.schema`
(re-exported here); :mod:`rabbitbus.conf.connection` parses a connection.
Nothing here touches settings at import time. ``settings`` reads
``django.conf.settings.RABBITBUS`` on first use and forgets what it read when
Django's ``setting_changed`` fires, so ``override_settings`` works in tests.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from rabbitbus.conf.connection import (
    MASK,
    ConnectionSettings,
    Endpoint,
    mask_url,
    parse_connection,
)
from rabbitbus.conf.schema import (
    CONNECTION_DEFAULTS,
    DEFAULT_URL,
    DEFAULTS,
    MODEL_EVENTS,
    BindingOptions,
    BridgeOptions,
    ConnectionOptions,
    ExchangeOptions,
    ManagementSettings,
    MetricsSettings,
    MonitoringSettings,
    OutboxSettings,
    QueueOptions,
    TLSOptions,
    WorkerSettings,
    defaults,
    is_int,
    is_number,
    keys,
    numbers,
    read,
)
from rabbitbus.exceptions import ConfigurationError

__all__ = [
    "CONNECTION_DEFAULTS",
    "DEFAULTS",
    "DEFAULT_URL",
    "MASK",
    "MODEL_EVENTS",
    "BindingOptions",
    "BridgeOptions",
    "ConnectionOptions",
    "ConnectionSettings",
    "Endpoint",
    "ExchangeOptions",
    "ManagementSettings",
    "MetricsSettings",
    "MonitoringSettings",
    "OutboxSettings",
    "QueueOptions",
    "Settings",
    "TLSOptions",
    "WorkerSettings",
    "defaults",
    "is_int",
    "is_number",
    "keys",
    "mask_url",
    "numbers",
    "parse_connection",
    "read",
    "settings",
]


class Settings:
    """Lazy view of ``settings.RABBITBUS`` merged over :data:`DEFAULTS`.

    Upper-case attributes are the top-level keys as written (``settings.APP_ID``);
    ``worker``, ``outbox``, ``monitoring`` and ``management`` are their sections
    read into the schema's dataclasses; ``connection(alias)`` a parsed connection.
    """

    @cached_property
    def user(self) -> dict[str, Any]:
        from django.conf import settings as django_settings

        value = getattr(django_settings, "RABBITBUS", {})
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown rabbitbus setting: {name!r}")
        value = self.user.get(name, DEFAULTS[name])
        self.__dict__[name] = value
        return value

    @cached_property
    def worker(self) -> WorkerSettings:
        return read(WorkerSettings, self.WORKER, "RABBITBUS['WORKER']")

    @cached_property
    def outbox(self) -> OutboxSettings:
        return read(OutboxSettings, self.OUTBOX, "RABBITBUS['OUTBOX']")

    @cached_property
    def monitoring(self) -> MonitoringSettings:
        return read(MonitoringSettings, self.MONITORING, "RABBITBUS['MONITORING']")

    @cached_property
    def metrics(self) -> MetricsSettings:
        """``METRICS`` (every field at its default when metrics are off)."""
        return read(MetricsSettings, self.METRICS or {}, "RABBITBUS['METRICS']")

    @cached_property
    def management(self) -> ManagementSettings | None:
        """None when ``MANAGEMENT`` is not configured."""
        raw = self.MANAGEMENT
        return read(ManagementSettings, raw, "RABBITBUS['MANAGEMENT']") if raw else None

    @cached_property
    def _connections(self) -> dict[str, ConnectionSettings]:
        return {}

    def connection(self, alias: str = "default") -> ConnectionSettings:
        """The parsed settings of connection ``alias``."""
        if alias not in self._connections:
            if alias not in self.CONNECTIONS:
                raise ConfigurationError(f"No RABBITBUS connection named {alias!r}.")
            self._connections[alias] = parse_connection(alias, self.CONNECTIONS[alias])
        return self._connections[alias]

    def reload(self) -> None:
        """Forget everything read so far (the next access reads again)."""
        self.__dict__.clear()


settings = Settings()


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "RABBITBUS":
        settings.reload()
        from rabbitbus.transport import connections

        connections.forget_all()
