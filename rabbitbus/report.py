"""Plain-text rendering of a monitoring snapshot, for ``rabbit_status``."""

from __future__ import annotations

from collections.abc import Iterator

from rabbitbus.monitoring import Overview, QueueStats


def _n(value: int | float | None, rate: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}/s" if rate else str(value)


def queue_line(queue: QueueStats) -> str:
    if not queue.exists:
        return f"  {queue.name:<40} (missing on the broker)"
    figures = (queue.ready, queue.unacked, queue.consumers)
    rates = (_n(queue.publish_rate, True), _n(queue.deliver_rate, True))
    return (
        f"  {queue.name:<40} "
        + " ".join(f"{_n(v):>8}" for v in figures)
        + (f" {rates[0]:>10} {rates[1]:>10}")
    )


def lines(snapshot: Overview) -> Iterator[str]:
    """The overview as lines of text (no trailing newlines)."""
    if not snapshot.reachable:
        yield f"Broker: UNREACHABLE ({snapshot.error})"
    else:
        yield f"Broker: reachable, RabbitMQ {snapshot.version} (queues by {snapshot.source})"
    if snapshot.note:
        yield f"Note: {snapshot.note}"
    yield ""
    yield f"Queues:  {'name':<40} {'ready':>8} {'unacked':>8} {'consumers':>8} "
    yield from (queue_line(queue) for queue in snapshot.queues if not queue.dead_letter)
    yield ""
    yield "Dead-letter queues:"
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
