"""The schema of ``RABBITBUS``: every key and its default, declared once.

The top level is :data:`DEFAULTS`; each section is a frozen dataclass whose
fields are its keys, lower-cased (``WORKER["GRACE_PERIOD"]`` is
``WorkerSettings.grace_period``). The system checks take their valid keys
from here (:func:`keys`), and code reads a section as its dataclass
(:func:`read`); no other module holds a default.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, TypeGuard, TypeVar

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
class BindingOptions:
    """One ``QUEUES[name]['BINDINGS']`` entry written as a dict (or a pair)."""

    exchange: str
    routing_key: str = ""


@dataclass(frozen=True)
class BridgeOptions:
    """One ``RABBITBUS['BRIDGES'][i]`` entry (:class:`rabbitbus.outbox.bridges.Bridge` has its
    defaults)."""

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

    event_loop: str = "auto"  # or "asyncio", "uvloop" (rabbitbus.runtime.event_loop)
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


@dataclass(frozen=True)
class MetricsSettings:
    """``RABBITBUS['METRICS']``: Prometheus metrics (the setting is None when off)."""

    port: int | None = None
    addr: str = "0.0.0.0"  # noqa: S104 - Prometheus scrapes from another host


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


def is_number(value: object) -> TypeGuard[float]:
    """Whether ``value`` is an int or a float. A bool is neither here: ``TIMEOUT: True``
    is a mistake, not one second."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int (a bool is not, as in :func:`is_number`)."""
    return isinstance(value, int) and not isinstance(value, bool)


def numbers(section: type) -> tuple[str, ...]:
    """The keys of ``section`` whose default is a number, in declaration order."""
    return tuple(key for key, value in defaults(section).items() if is_number(value))


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
    # rabbitbus.observability.metrics: a dict (MetricsSettings) turns them on.
    "METRICS": None,
    # The hand-read AMQP hot paths of rabbitbus.transport; False: the drivers' public API only.
    "FAST_PATHS": True,
}

CONNECTION_DEFAULTS: dict[str, Any] = defaults(ConnectionOptions)
