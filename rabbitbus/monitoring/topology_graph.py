"""The topology as a picture's data: exchanges -> bindings -> queues -> consumers/procedures.

:func:`build` is pure: it takes the known topology (settings plus the code
registry), the registered consumers and procedures, and optionally the
broker's own bindings (management API), and returns JSON-ready data that
``static/rabbitbus/topology.js`` draws. Each queue has a ``kind``: ``work``,
``rpc``, ``retry`` (a delay queue that dead-letters back to its work queue) or
``dead-letter``; retry and dead-letter queues name their work queue as ``parent``.
:func:`current` gathers the inputs of this process and the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rabbitbus import monitoring, topology
from rabbitbus.exceptions import ManagementApiError
from rabbitbus.monitoring import mgmt

logger = logging.getLogger("rabbitbus.monitoring.topology_graph")

NO_API = "Set RABBITBUS['MANAGEMENT'] to add the broker's own bindings to the known topology."


def _kind(queue: topology.Queue, procedure_queues: set[str]) -> str:
    if monitoring.is_dlq(queue.name):
        return "dead-letter"
    if monitoring.is_retry(queue.name):
        return "retry"
    return "rpc" if queue.name in procedure_queues else "work"


def _parent(queue: topology.Queue, kind: str, names: set[str]) -> str | None:
    """The work queue a retry or dead-letter queue belongs to (by rabbitbus's naming)."""
    if kind == "retry" and queue.dead_letter_routing_key in names:
        return queue.dead_letter_routing_key
    if kind == "dead-letter":
        base = queue.name.removesuffix(str(monitoring.options().dlq_suffix))
        return base if base in names else None
    return None


#: Within a work queue's group: the queue, its retry tiers (shortest first), its DLQ.
_RANK = {"work": 0, "rpc": 0, "retry": 1, "dead-letter": 2}


def _queues(known: topology.Topology, procedure_queues: set[str]) -> list[dict[str, Any]]:
    """One row per known queue, each work queue followed by its retry and dead-letter queues."""
    names = set(known.queues)
    rows = []
    for queue in known.queues.values():
        kind = _kind(queue, procedure_queues)
        parent = _parent(queue, kind, names)
        rows.append(
            {"name": queue.name, "type": queue.type, "kind": kind, "parent": parent,
             "ttl": queue.message_ttl}
        )  # fmt: skip
    return sorted(
        rows, key=lambda r: (r["parent"] or r["name"], _RANK[r["kind"]], r["ttl"] or 0, r["name"])
    )


def _bindings(
    known: topology.Topology, broker_bindings: Sequence[dict[str, Any]]
) -> list[dict[str, str]]:
    """Known bindings, plus the broker's bindings of known queues to named exchanges."""
    found = {(b.exchange, b.queue, b.routing_key): "registry" for b in known.bindings.values()}
    for row in broker_bindings:
        key = (row.get("source", ""), row.get("destination", ""), row.get("routing_key", ""))
        if key[0] and row.get("destination_type") == "queue" and key[1] in known.queues:
            found.setdefault(key, "broker")
    return [
        {"exchange": exchange, "queue": queue, "key": key, "source": source}
        for (exchange, queue, key), source in sorted(found.items())
    ]


def build(
    known: topology.Topology,
    consumers: dict[str, str],
    procedures: dict[str, str],
    broker_bindings: Sequence[dict[str, Any]] = (),
    connected: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The picture's data. ``consumers`` and ``procedures`` map a name to its queue;
    ``connected`` (from the broker, when known) maps a queue to its consumer count, given
    to each handler as ``connected`` (else None)."""
    bindings = _bindings(known, broker_bindings)
    exchanges = {name: ex.type for name, ex in known.exchanges.items()}
    for binding in bindings:
        exchanges.setdefault(binding["exchange"], "?")
    handlers = [
        {"name": name, "kind": kind, "queue": queue, "connected": (connected or {}).get(queue)}
        for kind, named in (("consumer", consumers), ("procedure", procedures))
        for name, queue in sorted(named.items())
    ]
    return {
        "exchanges": [{"name": name, "type": kind} for name, kind in sorted(exchanges.items())],
        "queues": _queues(known, set(procedures.values())),
        "bindings": bindings,
        "handlers": handlers,
    }


def _from_broker(alias: str) -> tuple[list[dict[str, Any]], dict[str, int] | None, str]:
    """``(bindings, consumer count per queue, note)`` from the management API, if any."""
    from rabbitbus.conf import settings

    api = mgmt.configured()
    if api is None:
        return [], None, NO_API
    vhost = settings.connection(alias).endpoints[0].vhost
    try:
        queues = api.queues(vhost)
        bindings = api.bindings(vhost)
    except ManagementApiError as exc:
        logger.warning("Management API unavailable (%s); drawing the known topology", exc)
        return [], None, f"Management API unavailable ({exc}): only the known topology is drawn."
    return bindings, {name: int(row.get("consumers") or 0) for name, row in queues.items()}, ""


def current(alias: str = "default") -> dict[str, Any]:
    """:func:`build` for this process's registry and, when configured, the broker's bindings
    and consumer counts. Adds ``note``: empty, or why the broker's view is left out."""
    from rabbitbus import rpc
    from rabbitbus.consuming import registry

    consumers = {spec.name: spec.queue for spec in registry.consumers.values()}
    procedures = {name: proc.queue for name, proc in rpc.registered().items()}
    bindings, connected, note = _from_broker(alias)
    graph = build(topology.configured(), consumers, procedures, bindings, connected)
    return {**graph, "note": note}
