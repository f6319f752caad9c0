"""A queue's recent past, from the management API's samples, for the dashboard's charts.

RabbitMQ keeps samples of each queue's depths and message counters (see
https://www.rabbitmq.com/docs/management#http-api, ``lengths_age`` and
``msg_rates_age``). :func:`queue_history` turns one queue object into two
series the browser draws as they are, oldest first:

- ``depth``: ``[timestamp_ms, ready, unacked]``
- ``rates``: ``[timestamp_ms, publish_per_s, deliver_per_s]`` (from counter differences)

No I/O here.
"""

from __future__ import annotations

from typing import Any

#: How far back the dashboard's charts reach, in seconds.
WINDOW = 300


def _samples(details: dict[str, Any] | None) -> dict[int, float]:
    """timestamp -> sample, from one ``*_details`` object (missing: none)."""
    return {int(s["timestamp"]): float(s["sample"]) for s in (details or {}).get("samples", [])}


def _depth(row: dict[str, Any]) -> list[list[float]]:
    ready = _samples(row.get("messages_ready_details"))
    unacked = _samples(row.get("messages_unacknowledged_details"))
    return [[t, ready[t], unacked.get(t, 0.0)] for t in sorted(ready)]


def _per_second(counts: dict[int, float], times: list[int]) -> list[float]:
    """Rates between consecutive counter samples (a counter reset counts as 0)."""
    rates = []
    for before, after in zip(times, times[1:], strict=False):
        seconds = (after - before) / 1000 or 1
        rates.append(max(0.0, counts.get(after, 0.0) - counts.get(before, 0.0)) / seconds)
    return rates


def _rates(row: dict[str, Any]) -> list[list[float]]:
    stats = row.get("message_stats") or {}
    publish = _samples(stats.get("publish_details"))
    deliver = _samples(stats.get("deliver_get_details"))
    times = sorted(set(publish) | set(deliver))
    pairs = zip(_per_second(publish, times), _per_second(deliver, times), strict=True)
    return [[t, p, d] for t, (p, d) in zip(times[1:], pairs, strict=True)]


def queue_history(row: dict[str, Any]) -> dict[str, list[list[float]]]:
    """The ``depth`` and ``rates`` series of one management API queue object."""
    return {"depth": _depth(row), "rates": _rates(row)}
