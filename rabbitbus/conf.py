"""The one ``RABBITBUS`` setting: its schema, lazy reads, reset on change.

Every key of the setting and its default is declared here, once: the top
level in :data:`DEFAULTS`, each section as a frozen dataclass whose fields are
its keys, lower-cased (``WORKER["GRACE_PERIOD"]`` is
``WorkerSettings.grace_period``). The system checks take their valid keys from
these (:func:`keys`), and code reads a section as its dataclass
(``settings.worker.grace_period``); no other module holds a default.

Nothing here touches settings at import time. ``settings`` reads
``django.conf.settings.RABBITBUS`` on first use and forgets what it read when
Django's ``setting_changed`` fires, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.core.signals import setting_changed
from django.dispatch import receiver

from rabbitbus.exceptions import ConfigurationError

T = TypeVar("T")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The model events a bridge publishes (``BRIDGES[i]["EVENTS"]``), all by default.
MODEL_EVENTS = ("created", "updated", "deleted")


# -- the schema: each section's keys and defaults -------------------------------


@dataclass(frozen=True)
class ConnectionOptions:
    """One ``RABBITBUS['CONNECTIONS'][alias]`` entry as written (parsed: ConnectionSettings)."""

    url: str = DEFAULT_URL
    urls: list[str] | tuple[str, ...] | None = None
    heartbeat: int = 30
    connection_timeout: float = 10.0
    blocked_connection_timeout: float = 30.0
    publish_timeout: float = 10.0
    reconnect_timeout: float = 10.0
    connection_name: str | None = None
    tls: dict[str, Any] | None = None


@dataclass(frozen=True)
class TLSOptions:
    """``CONNECTIONS[alias]['TLS']``: certificates (None: the system's CAs, the URL's host)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_hostname: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class ExchangeOptions:
    """One ``RABBITBUS['EXCHANGES'][name]`` entry (a bare string is its TYPE)."""

    type: str = "topic"
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueOptions:
    """One ``RABBITBUS['QUEUES'][name]`` entry."""

    type: str = "quorum"
    durable: bool = True
    auto_delete: bool = False
    exclusive: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    delivery_limit: int | None = None
    message_ttl: int | None = None
    max_length: int | None = None
    bindings: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class BridgeOptions:
    """One ``RABBITBUS['BRIDGES'][i]`` entry; :class:`rabbitbus.bridges.Bridge` has its defaults."""

    exchange: str
    model: Any = None
    signal: Any = None
    routing_key: Any = "{model}.{event}"
    events: Any = MODEL_EVENTS
    payload: Any = None
    headers: Any = None
    mode: str = "on_commit"
    connection: str = "default"
    type: str | None = "{app_label}.{model}.{event}"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerSettings:
    """``RABBITBUS['WORKER']``: consumer workers and RPC servers."""

    event_loop: str = "auto"  # or "asyncio", "uvloop" (rabbitbus.event_loop)
    grace_period: float = 30
    heartbeat_file: str | os.PathLike[str] | None = None
    heartbeat_interval: float = 5
    processed_retention_days: float = 7
    reconnect_max_delay: float = 30


@dataclass(frozen=True)
class OutboxSettings:
    """``RABBITBUS['OUTBOX']``: the relay and on-commit publishing."""

    batch_size: int = 500
    claim_timeout: float = 60.0
    max_attempts: int = 5
    retry_backoff: float = 5.0
    retention: float = 7 * 24 * 3600.0
    poll_interval: float = 0.05
    idle_interval: float = 1.0
    # The most a commit waits to connect before falling back (never above CONNECTION_TIMEOUT).
    on_commit_connect_timeout: float = 2.0
    on_commit_failure: str = "outbox"  # or "raise"

    def overridden(self, options: dict[str, Any]) -> OutboxSettings:
        """These settings with some keys (upper-case, as in the setting) replaced."""
        unknown = sorted(set(options) - keys(OutboxSettings))
        if unknown:
            raise ConfigurationError(f"Unknown outbox option(s): {', '.join(unknown)}.")
        return replace(self, **{key.lower(): value for key, value in options.items()})


@dataclass(frozen=True)
class ManagementSettings:
    """``RABBITBUS['MANAGEMENT']``: the management HTTP API (the setting is None when unused)."""

    url: str
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    timeout: float = 3.0


@dataclass(frozen=True)
class MonitoringSettings:
    """``RABBITBUS['MONITORING']``: the dashboard."""

    events_exchange: str = "rabbitbus.events"
    stale_after: float = 60.0
    dlq_suffix: str = ".dlq"


def keys(section: type) -> frozenset[str]:
    """The settings keys of a schema dataclass: its field names, upper-case."""
    return frozenset(item.name.upper() for item in fields(section))


def defaults(section: type) -> dict[str, Any]:
    """Key -> default of every key of ``section`` that has one, in declaration order."""
    found: dict[str, Any] = {}
    for item in fields(section):
        if item.default is not MISSING:
            found[item.name.upper()] = item.default
        elif item.default_factory is not MISSING:
            found[item.name.upper()] = item.default_factory()
    return found


def numbers(section: type) -> tuple[str, ...]:
    """The keys of ``section`` whose default is a number, in declaration order."""
    return tuple(
        key
        for key, value in defaults(section).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    )


def read(section: type[T], raw: Any, where: str) -> T:
    """``raw`` (one section as written) over the section's defaults.

    Unknown keys are left out (the system checks report them); a section that
    is not a dict raises :class:`ConfigurationError`.
    """
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a dict.")
    known = keys(section)
    try:
        return section(**{key.lower(): value for key, value in raw.items() if key in known})
    except TypeError as exc:  # a required key is missing
        raise ConfigurationError(f"{where}: {exc}") from exc


#: The top level: each key of ``RABBITBUS`` and its default.
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
    "WORKER": defaults(WorkerSettings),
    # Monitoring (rabbitbus.monitoring): the optional management HTTP API and the dashboard.
    "MANAGEMENT": None,
    "MONITORING": {},
}

CONNECTION_DEFAULTS: dict[str, Any] = defaults(ConnectionOptions)


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
    from rabbitbus.connection_checks import connection_errors

    errors = [error for error in connection_errors(alias, raw) if error.is_serious()]
    if errors:
        first = errors[0]
        raise ConfigurationError(f"{first.id}: {first.msg}")
    options = read(ConnectionOptions, raw, f"RABBITBUS['CONNECTIONS'][{alias!r}]")
    return ConnectionSettings(
        alias=alias,
        endpoints=tuple(Endpoint.from_url(url) for url in options.urls or [options.url]),
        heartbeat=int(options.heartbeat),
        connection_timeout=float(options.connection_timeout),
        blocked_connection_timeout=float(options.blocked_connection_timeout),
        publish_timeout=float(options.publish_timeout),
        reconnect_timeout=float(options.reconnect_timeout),
        connection_name=options.connection_name,
        tls=dict(options.tls or {}),
    )


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
        from rabbitbus import connections

        connections.forget_all()
