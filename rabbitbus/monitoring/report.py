"""Plain-text rendering of a monitoring snapshot, for ``rabbit_status``."""

from __future__ import annotations

from collections.abc import Iterator

from rabbitbus.monitoring import Overview, QueueStats
from rabbitbus.monitoring.status import MANAGEMENT_API


def _n(value: int | float | None, rate: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}/s" if rate else str(value)


#: Width of the queue-name column, then (header, width) of each figure column: the
#: counts always, the rates (per second) only when they come from the management API.
NAME_WIDTH = 40
COUNTS = (("ready", 8), ("unacked", 8), ("consumers", 9))
RATES = (("publish", 10), ("deliver", 10))


def _columns(rates: bool) -> tuple[tuple[str, int], ...]:
    return COUNTS + RATES if rates else COUNTS


def _row(name: str, cells: tuple[str, ...], rates: bool) -> str:
    columns = _columns(rates)
    figures = " ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, columns, strict=True))
    return f"  {name:<{NAME_WIDTH}} {figures}"


def shows_rates(snapshot: Overview) -> bool:
    """Whether the queue tables have rate columns: only with the management API's
    figures (without them every rate would be "-"; the snapshot's note says why)."""
    return snapshot.source == MANAGEMENT_API


def header(rates: bool = True) -> str:
    """The column headers, aligned with :func:`queue_line`'s figures (rates are per second)."""
    return _row("name", tuple(title for title, _ in _columns(rates)), rates)


def queue_line(queue: QueueStats, rates: bool = True) -> str:
    if not queue.exists:
        return f"  {queue.name:<{NAME_WIDTH}} (missing on the broker)"
    figures: tuple[str, ...] = (_n(queue.ready), _n(queue.unacked), _n(queue.consumers))
    if rates:
        figures += (_n(queue.publish_rate, True), _n(queue.deliver_rate, True))
    return _row(queue.name, figures, rates)


def lines(snapshot: Overview) -> Iterator[str]:
    """The overview as lines of text (no trailing newlines)."""
    if not snapshot.reachable:
        yield f"Broker: UNREACHABLE ({snapshot.error})"
    else:
        yield f"Broker: reachable, RabbitMQ {snapshot.version} (queues by {snapshot.source})"
    if snapshot.note:
        yield f"Note: {snapshot.note}"
    if snapshot.nodes:
        yield ""
        yield "Nodes:"
        for node in snapshot.nodes:
            state = "running" if node["running"] else "DOWN"
            alarms = f" ALARM: {', '.join(node['alarms'])}" if node["alarms"] else ""
            yield f"  {node['name']} {state}, our connections: {node['connections']}{alarms}"
    rates = shows_rates(snapshot)
    yield ""
    yield "Queues:"
    yield header(rates)
    yield from (queue_line(queue, rates) for queue in snapshot.queues if not queue.dead_letter)
    yield ""
    yield "Dead-letter queues:"
    yield header(rates)
    yield from (queue_line(queue, rates) for queue in snapshot.dead_letters)
    yield ""
    yield "Workers:"
    for worker in snapshot.workers:
        stale = " STALE" if worker["stale"] else ""
        yield (
            f"  {worker['worker_id']} host={worker['hostname']} pid={worker['pid']} "
            f"consumers={','.join(map(str, worker['consumers'])) or '-'} "
            f"processed={worker['processed']} failed={worker['failed']} "
            f"retried={worker['retried']} last_seen={worker['last_seen']:%Y-%m-%d %H:%M:%S}{stale}"
        )
    if not snapshot.workers:
        yield "  (no heartbeats)"
    yield ""
    age = snapshot.outbox.get("oldest_age")
    yield (
        f"Outbox: pending={snapshot.outbox.get('pending', 0)} "
        f"failing={snapshot.outbox.get('failing', 0)} "
        f"oldest={'-' if age is None else f'{age:.0f}s'}"
    )
