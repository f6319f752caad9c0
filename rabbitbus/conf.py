"""The one ``RABBITBUS`` setting: defaults, lazy reads, reset on change.

Nothing here touches settings at import time. ``settings`` reads
``django.conf.settings.RABBITBUS`` on first use and forgets what it read when
Django's ``setting_changed`` fires, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.core.signals import setting_changed
from django.dispatch import receiver

from rabbitbus.exceptions import ConfigurationError

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

DEFAULTS: dict[str, Any] = {
    "CONNECTIONS": {"default": {"URL": DEFAULT_URL}},
    "SERIALIZER": "rabbitbus.serializers.JSONSerializer",
    "MAX_MESSAGE_SIZE": 1024 * 1024,
    "APP_ID": "rabbitbus",
    "EXCHANGES": {},
    "QUEUES": {},
    "BRIDGES": [],
    "OUTBOX": {},
    # Servers reply only to these reply_to prefixes (direct reply-to, server-named queues).
    "RPC_REPLY_TO_PREFIXES": ("amq.rabbitmq.reply-to.", "amq.gen-"),
    "WORKER": {
        "EVENT_LOOP": "auto",  # or "asyncio", "uvloop" (rabbitbus.event_loop)
        "GRACE_PERIOD": 30,
        "HEARTBEAT_FILE": None,
        "HEARTBEAT_INTERVAL": 5,
        "PROCESSED_RETENTION_DAYS": 7,
        "RECONNECT_MAX_DELAY": 30,
    },
    # Monitoring (rabbitbus.monitoring): the optional management HTTP API and the dashboard.
    "MANAGEMENT": None,
    "MONITORING": {},
    "METRICS": None,  # rabbitbus.observability.metrics: a dict turns them on
}

CONNECTION_DEFAULTS: dict[str, Any] = {
    "URL": DEFAULT_URL,
    "URLS": None,
    "HEARTBEAT": 30,
    "CONNECTION_TIMEOUT": 10.0,
    "BLOCKED_CONNECTION_TIMEOUT": 30.0,
    "PUBLISH_TIMEOUT": 10.0,
    "RECONNECT_TIMEOUT": 10.0,
    "CONNECTION_NAME": None,
    "TLS": None,
}


MASK = "******"


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``******``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:{MASK}"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


@dataclass(frozen=True)
class Endpoint:
    """One broker address parsed from an AMQP URL."""

    url: str = field(repr=False)
    host: str
    port: int
    vhost: str
    username: str
    password: str = field(repr=False)
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        tls = parts.scheme == "amqps"
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            url=url,
            host=parts.hostname or "localhost",
            port=parts.port or (5671 if tls else 5672),
            vhost=unquote(path) or "/",
            username=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            tls=tls,
        )

    def with_vhost(self, vhost: str) -> Endpoint:
        """The same broker and credentials, in another virtual host."""
        parts = urlsplit(self.url)
        url = urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
        return Endpoint.from_url(url)

    def __str__(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class ConnectionSettings:
    """A validated ``CONNECTIONS`` entry. Its repr never shows a password."""

    alias: str
    endpoints: tuple[Endpoint, ...]
    heartbeat: int
    connection_timeout: float
    blocked_connection_timeout: float
    publish_timeout: float
    reconnect_timeout: float
    connection_name: str | None
    tls: dict[str, Any] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context with verification on unless TLS INSECURE is set."""
        if not any(endpoint.tls for endpoint in self.endpoints):
            return None
        context = ssl.create_default_context(cafile=self.tls.get("CA_FILE"))
        if self.tls.get("CERT_FILE"):
            context.load_cert_chain(self.tls["CERT_FILE"], self.tls.get("KEY_FILE"))
        if self.tls.get("INSECURE"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_connection(alias: str, raw: Any) -> ConnectionSettings:
    """Validate and parse one ``CONNECTIONS`` entry.

    Raises :class:`ConfigurationError` naming the first problem; the system
    checks report every problem with the same ids.
    """
    from rabbitbus.checks import connection_errors

    errors = [error for error in connection_errors(alias, raw) if error.is_serious()]
    if errors:
        first = errors[0]
        raise ConfigurationError(f"{first.id}: {first.msg}")
    options = {**CONNECTION_DEFAULTS, **raw}
    urls = options["URLS"] or [options["URL"]]
    return ConnectionSettings(
        alias=alias,
        endpoints=tuple(Endpoint.from_url(url) for url in urls),
        heartbeat=int(options["HEARTBEAT"]),
        connection_timeout=float(options["CONNECTION_TIMEOUT"]),
        blocked_connection_timeout=float(options["BLOCKED_CONNECTION_TIMEOUT"]),
        publish_timeout=float(options["PUBLISH_TIMEOUT"]),
        reconnect_timeout=float(options["RECONNECT_TIMEOUT"]),
        connection_name=options["CONNECTION_NAME"],
        tls=dict(options["TLS"] or {}),
    )


class Settings:
    """Lazy view of ``settings.RABBITBUS`` merged over :data:`DEFAULTS`."""

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
        from rabbitbus import connections

        connections.forget_all()
