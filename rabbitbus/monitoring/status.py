"""What the dashboard and ``rabbit_status`` show: broker, queues, workers, outbox, DLQs,
task queues (:mod:`rabbitbus.monitoring.task_monitoring`).

:func:`overview` gathers one snapshot, as plain data (JSON-ready through
:func:`as_json`). Queue figures come from the management HTTP API when
``RABBITBUS["MANAGEMENT"]`` is set (with publish/deliver rates), otherwise from
passive declares (depth and consumers only; the snapshot says why rates are
missing). :func:`publish_event` is how workers tell the live dashboard what happens.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from rabbitbus import topology
from rabbitbus.conf import MonitoringSettings
from rabbitbus.exceptions import (
    BrokerConnectionError,
    ExchangeNotFound,
    ManagementApiError,
    RabbitBusError,
)
from rabbitbus.monitoring import history, mgmt, task_monitoring
from rabbitbus.transport import connections, declare

logger = logging.getLogger("rabbitbus.monitoring")

#: ``Overview.source`` when the queue figures (and their rates) come from the management API.
MANAGEMENT_API = "management API"
NO_RATES = "Rates need the management API: set RABBITBUS['MANAGEMENT'] to show them."


def options() -> MonitoringSettings:
    """``RABBITBUS["MONITORING"]`` over its defaults."""
    from rabbitbus.conf import settings

    return settings.monitoring


def events_exchange() -> str:
    return str(options().events_exchange)


def is_dlq(name: str) -> bool:
    """Whether ``name`` is a dead-letter queue (by the ``DLQ_SUFFIX`` convention)."""
    return name.endswith(options().dlq_suffix)


_RETRY = re.compile(r"\.(retry|delay)\.\d+$")


def is_retry(name: str) -> bool:
    """Whether ``name`` is a delay queue: a retry's (``<queue>.retry.<ms>``, see retries.py)
    or a deferred task's (``<queue>.delay.<ms>``, see rabbitbus.tasks.options)."""
    return bool(_RETRY.search(name))


def _natural(name: str) -> list[tuple[int, int | str]]:
    """Sort key: numeric parts by value (``q.retry.200`` before ``q.retry.1600``)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in name.split(".")]


def known_queues() -> list[str]:
    """Every queue rabbitbus knows (settings, the code registry and the ``TASKS`` backends'
    queues as configured now), sorted naturally."""
    names = set(topology.configured().queues) | set(task_monitoring.all_queues())
    return sorted(names, key=_natural)


@dataclass
class QueueStats:
    name: str
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None
    #: the management API's recent samples (see rabbitbus.monitoring.history), else None
    history: dict[str, list[list[float]]] | None = None
    #: a dead-letter queue (by DLQ_SUFFIX), a retry delay queue (``.retry.<ms>``): by name
    #: unless given
    dead_letter: bool = False
    retry: bool = False

    def __post_init__(self) -> None:
        self.dead_letter = self.dead_letter or is_dlq(self.name)
        self.retry = self.retry or is_retry(self.name)


@dataclass
class Overview:
    reachable: bool
    version: str = ""
    source: str = "passive declare"
    note: str = ""
    error: str = ""
    queues: list[QueueStats] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, Any] = field(default_factory=dict)
    tasks: list[task_monitoring.TaskQueueStats] = field(default_factory=list)
    #: The cluster's nodes (management API only): name, running, alarms, our connections.
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dead_letters(self) -> list[QueueStats]:
        return [queue for queue in self.queues if queue.dead_letter]


# -- queues ------------------------------------------------------------------


def _rate(row: dict[str, Any], key: str) -> float:
    return float(row.get("message_stats", {}).get(f"{key}_details", {}).get("rate", 0.0))


def _from_api(name: str, row: dict[str, Any] | None) -> QueueStats:
    if row is None:
        return QueueStats(name, exists=False)
    return QueueStats(
        name,
        ready=int(row.get("messages_ready") or 0),
        unacked=int(row.get("messages_unacknowledged") or 0),
        consumers=int(row.get("consumers") or 0),
        publish_rate=_rate(row, "publish"),
        deliver_rate=_rate(row, "deliver_get"),
        history=history.queue_history(row),
    )


def queues_from_api(api: mgmt.ManagementApi, names: list[str], alias: str) -> list[QueueStats]:
    """Queue figures with rates, from the management API."""
    from rabbitbus.conf import settings

    rows = api.queues(settings.connection(alias).endpoints[0].vhost, history=history.WINDOW)
    return [_from_api(name, rows.get(name)) for name in names]


def queues_from_declares(names: list[str], alias: str) -> list[QueueStats]:
    """Queue figures from passive declares: ready count and consumers, no rates.

    A passive declare of a missing queue closes the channel (404), so each
    miss gets a fresh channel. Unacked counts are not available this way.
    """
    connection = connections.get_sync(alias).get()
    channel = connection.channel()
    stats = []
    try:
        for name in names:
            counts = declare.passive(channel, name)
            if counts is None:
                stats.append(QueueStats(name, exists=False))
                channel = connection.channel()
                continue
            stats.append(QueueStats(name, ready=counts[0], consumers=counts[1]))
    finally:
        if channel.is_open:
            channel.close()
    return stats


def queue_stats(names: list[str], alias: str = "default") -> tuple[list[QueueStats], str, str]:
    """``(stats, source, note)`` for ``names``, by the best available source."""
    api = mgmt.configured()
    if api is not None:
        try:
            return queues_from_api(api, names, alias), MANAGEMENT_API, ""
        except ManagementApiError as exc:
            logger.warning("Management API unavailable (%s); using passive declares", exc)
            note = f"Management API unavailable ({exc}); rates are left out."
            return queues_from_declares(names, alias), "passive declare", note
    return queues_from_declares(names, alias), "passive declare", NO_RATES


# -- database ----------------------------------------------------------------


def workers(now: datetime | None = None) -> list[dict[str, Any]]:
    """Worker heartbeats, newest first; ``stale`` when not seen for STALE_AFTER s."""
    from rabbitbus.models import WorkerHeartbeat

    now = now or timezone.now()
    stale_before = now - timedelta(seconds=float(options().stale_after))
    fields = ("worker_id", "hostname", "pid", "kind", "consumers", "processed", "failed")
    rows = WorkerHeartbeat.objects.order_by("-last_seen").values(*fields, "retried", "last_seen")
    return [{**row, "stale": row["last_seen"] < stale_before} for row in rows]


def outbox(now: datetime | None = None) -> dict[str, Any]:
    """Pending and failing outbox rows, and the age in seconds of the oldest pending one."""
    from rabbitbus.models import OutboxMessage

    now = now or timezone.now()
    pending = OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING)
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    return {
        "pending": pending.count(),
        "failing": pending.filter(attempts__gt=0).count()
        + OutboxMessage.objects.filter(status=OutboxMessage.Status.FAILED).count(),
        "oldest_age": (now - oldest).total_seconds() if oldest else None,
    }


# -- the snapshot --------------------------------------------------------------


def broker_overview(alias: str = "default") -> Overview:
    """Broker reachability, version and queue figures (no database access)."""
    try:
        version = connections.broker_version(alias)
        stats, source, note = queue_stats(known_queues(), alias)
    except RabbitBusError as exc:
        return Overview(reachable=False, error=f"{type(exc).__name__}: {exc}")
    except connections.PIKA_CONNECTION_ERRORS as exc:
        connections.get_sync(alias).discard()
        return Overview(reachable=False, error=type(exc).__name__)
    snapshot = Overview(reachable=True, version=version, source=source, note=note, queues=stats)
    snapshot.nodes = nodes()
    return snapshot


def nodes() -> list[dict[str, Any]]:
    """The cluster's nodes from the management API; empty without it (or when it fails:
    the queue figures say why)."""
    api = mgmt.configured()
    if api is None:
        return []
    try:
        return mgmt.cluster_nodes(api)
    except ManagementApiError:
        return []


def overview(alias: str = "default") -> Overview:
    """The whole snapshot: broker, queues, workers, outbox and task queues."""
    snapshot = broker_overview(alias)
    snapshot.workers = workers()
    snapshot.outbox = outbox()
    snapshot.tasks = task_monitoring.task_queues(snapshot.queues)
    return snapshot


def as_json(snapshot: Overview) -> dict[str, Any]:
    """The snapshot as JSON-ready data (datetimes as ISO strings)."""
    data = asdict(snapshot)
    for worker in data["workers"]:
        worker["last_seen"] = worker["last_seen"].isoformat()
    return data


# -- events ------------------------------------------------------------------


def event_headers(kind: str) -> dict[str, Any]:
    return {"x-rabbitbus-event": kind, "x-rabbitbus-host": socket.gethostname(), "pid": os.getpid()}


def _event_options(kind: str, connection: str) -> dict[str, Any]:
    """Events are transient and short-lived; nobody listening is not an error."""
    return {
        "connection": connection,
        "persistent": False,
        "mandatory": False,
        "headers": event_headers(kind),
        "type": kind,
        "expiration": 60,
    }


#: Why events were last dropped (the error's type), logged once until one gets through:
#: a worker's stats every few seconds must not repeat the same warning all night.
_dropping: str | None = None


def _dropped(kind: str, error: BaseException) -> None:
    global _dropping
    why = type(error).__name__
    if why == _dropping:
        logger.debug("Dropped monitoring event %r: %s", kind, why)
        return
    _dropping = why
    # A broker outage is logged once by the connection: one dropped event is no news then.
    level = logging.INFO if isinstance(error, BrokerConnectionError) else logging.WARNING
    missing = isinstance(error, ExchangeNotFound)
    hint = " (rabbit_setup declares the events exchange)" if missing else ""
    logger.log(
        level,
        "Dropped monitoring event %r: %s%s; the next drops for the same reason are logged "
        "at DEBUG until an event gets through",
        kind, why, hint,
    )  # fmt: skip


def _delivered() -> None:
    global _dropping
    if _dropping is not None:
        _dropping = None
        logger.info("Monitoring events get through again")


def publish_event(kind: str, data: dict[str, Any], *, connection: str = "default") -> bool:
    """Tell the live dashboard that ``kind`` happened (e.g. ``"worker.stats"``).

    Publishes ``data`` (JSON) transiently to the events exchange with routing
    key ``kind``. Never raises: a failure is logged and the event dropped, so
    callers may use it on hot paths. Returns whether the broker confirmed it.
    """
    from rabbitbus import publishing

    try:
        publishing.publish(events_exchange(), kind, data, **_event_options(kind, connection))
    except Exception as exc:  # noqa: BLE001 - events must never break the caller
        _dropped(kind, exc)
        return False
    _delivered()
    return True


async def apublish_event(kind: str, data: dict[str, Any], *, connection: str = "default") -> bool:
    """The async twin of :func:`publish_event`, with the same contract."""
    from rabbitbus import publishing

    try:
        await publishing.apublish(events_exchange(), kind, data, **_event_options(kind, connection))
    except Exception as exc:  # noqa: BLE001 - events must never break the caller
        _dropped(kind, exc)
        return False
    _delivered()
    return True


def register_topology() -> None:
    """Put the events exchange in the code registry (rabbit_setup declares it).

    The app's ``ready()`` calls this: a ``MONITORING`` the checks refuse (E063, E065)
    registers nothing instead of raising, so every command still starts and
    ``manage.py check`` names the mistake.
    """
    from rabbitbus.checks.settings import monitoring_errors
    from rabbitbus.conf import settings

    if any(error.is_serious() for error in monitoring_errors(settings.MONITORING)):
        return
    topology.registry.add(topology.Exchange(events_exchange(), "topic"))
