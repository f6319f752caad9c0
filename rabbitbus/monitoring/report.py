"""Plain-text rendering of a monitoring snapshot, for ``rabbit_status``."""

from __future__ import annotations

from collections.abc import Iterator

from rabbitbus.monitoring import Overview, QueueStats


def _n(value: int | float | None, rate: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}/s" if rate else str(value)


#: Width of the queue-name column, then (header, width) of each figure column.
NAME_WIDTH = 40
COLUMNS = (("ready", 8), ("unacked", 8), ("consumers", 9), ("publish", 10), ("deliver", 10))


def _row(name: str, cells: tuple[str, ...]) -> str:
    figures = " ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))
    return f"  {name:<{NAME_WIDTH}} {figures}"


def header() -> str:
    """The column headers, aligned with :func:`queue_line`'s figures (rates are per second)."""
    return _row("name", tuple(title for title, _ in COLUMNS))


def queue_line(queue: QueueStats) -> str:
    if not queue.exists:
        return f"  {queue.name:<{NAME_WIDTH}} (missing on the broker)"
    figures = (_n(queue.ready), _n(queue.unacked), _n(queue.consumers))
    rates = (_n(queue.publish_rate, True), _n(queue.deliver_rate, True))
    return _row(queue.name, (*figures, *rates))


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
    yield ""
    yield "Queues:"
    yield header()
    yield from (queue_line(queue) for queue in snapshot.queues if not queue.dead_letter)
    yield ""
    yield "Dead-letter queues:"
    yield header()
    yield from (queue_line(queue) for queue in snapshot.dead_letters)
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
