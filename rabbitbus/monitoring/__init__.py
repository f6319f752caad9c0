"""Monitoring: what the admin dashboard, ``rabbit_status`` and ``rabbit_dlq`` show.

:mod:`~rabbitbus.monitoring.status` (one snapshot: broker, nodes, queues, workers, outbox,
dead letters, task queues; events for the live dashboard), :mod:`~rabbitbus.monitoring.mgmt`
(the management HTTP API client), :mod:`~rabbitbus.monitoring.history` (a queue's recent
past), :mod:`~rabbitbus.monitoring.task_monitoring` (per ``django.tasks`` queue),
:mod:`~rabbitbus.monitoring.deadletters` (browse, replay, discard, purge),
:mod:`~rabbitbus.monitoring.topology_graph`, :mod:`~rabbitbus.monitoring.report` (the text of
``rabbit_status``) and :mod:`~rabbitbus.monitoring.admin_views`. The live sockets are
:mod:`rabbitbus.live`, a documented import path of its own.

``from rabbitbus import monitoring`` gives the snapshot's functions
(``monitoring.publish_event(...)``, ``monitoring.overview()``).
"""

from __future__ import annotations

from rabbitbus.monitoring.status import (
    NO_RATES,
    Overview,
    QueueStats,
    apublish_event,
    as_json,
    broker_overview,
    event_headers,
    events_exchange,
    is_dlq,
    is_retry,
    known_queues,
    nodes,
    options,
    outbox,
    overview,
    publish_event,
    queue_stats,
    queues_from_api,
    queues_from_declares,
    register_topology,
    workers,
)
from rabbitbus.transport.connections import broker_version

__all__ = [
    "NO_RATES",
    "Overview",
    "QueueStats",
    "apublish_event",
    "as_json",
    "broker_overview",
    "broker_version",
    "event_headers",
    "events_exchange",
    "is_dlq",
    "is_retry",
    "known_queues",
    "nodes",
    "options",
    "outbox",
    "overview",
    "publish_event",
    "queue_stats",
    "queues_from_api",
    "queues_from_declares",
    "register_topology",
    "workers",
]
