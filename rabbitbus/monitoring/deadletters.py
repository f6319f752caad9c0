"""Dead-letter queues: browse without loss, replay to the origin, discard, purge.

Browsing reads up to N messages with acks pending, then closes the channel so
the broker requeues them: nothing is lost, but requeued messages are marked
``redelivered`` and may come back in a different order.
Replay publishes (confirmed, mandatory) to the original exchange and routing key
*before* acking the dead-letter copy: a crash in between duplicates, never loses.
See https://www.rabbitmq.com/docs/dlx
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rabbitbus import messages, monitoring
from rabbitbus.exceptions import QueueNotFound
from rabbitbus.messages import Delivery
from rabbitbus.observability import traces
from rabbitbus.transport import connections, declare

logger = logging.getLogger("rabbitbus.monitoring.deadletters")

PREVIEW_BYTES = 2000
ERROR_HEADERS = ("x-rabbitbus-error-class", "x-rabbitbus-error", "x-rabbitbus-attempts")
#: Headers a replayed message leaves behind: it starts its life afresh.
DROPPED_ON_REPLAY = (
    *ERROR_HEADERS,
    "x-rabbitbus-original-exchange",
    "x-rabbitbus-original-routing-key",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


@dataclass
class DeadLetter:
    """One dead-lettered message, as read from its queue."""

    message_id: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: bytes
    redelivered: bool = False

    @property
    def error_class(self) -> str:
        return _text(self.headers.get("x-rabbitbus-error-class", ""))

    @property
    def error(self) -> str:
        return _text(self.headers.get("x-rabbitbus-error", "")) or self._death_reason()

    @property
    def attempts(self) -> int | None:
        value = self.headers.get("x-rabbitbus-attempts")
        return value if isinstance(value, int) else None

    @property
    def preview(self) -> str:
        """The start of the body as text (for display only; escape it when rendering)."""
        return self.body[:PREVIEW_BYTES].decode("utf-8", errors="replace")

    def origin(self) -> tuple[str, str] | None:
        """``(exchange, routing_key)`` the message first went to, or None if unknown."""
        headers = self.headers
        if "x-rabbitbus-original-exchange" in headers:
            exchange = _text(headers["x-rabbitbus-original-exchange"])
            return exchange, _text(headers.get("x-rabbitbus-original-routing-key", ""))
        deaths = headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
            first = deaths[-1]  # x-death is newest first
            keys = first.get("routing-keys")  # from the wire: anything at all
            key = keys[0] if isinstance(keys, list) and keys else ""
            first_exchange = headers.get("x-first-death-exchange", first.get("exchange", ""))
            return _text(first_exchange), _text(key)
        return None

    def _death_reason(self) -> str:
        return _text(self.headers.get("x-first-death-reason", ""))


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _dead_letter(delivery: Delivery) -> DeadLetter:
    names = ("content_type", "content_encoding", "type", "correlation_id", "app_id", "timestamp")
    properties = {name: getattr(delivery, name) for name in names}
    return DeadLetter(
        message_id=delivery.message_id or "",
        headers=delivery.headers,
        properties={name: value for name, value in properties.items() if value is not None},
        body=delivery.body,
        redelivered=delivery.redelivered,
    )


def known() -> list[str]:
    """The dead-letter queues rabbitbus knows (settings and registered consumers), sorted."""
    return [name for name in monitoring.known_queues() if monitoring.is_dlq(name)]


def check_queue(name: str) -> None:
    """Raise :class:`QueueNotFound` (naming the known ones) unless ``name`` is a known DLQ."""
    queues = known()
    if name not in queues:
        raise QueueNotFound(
            f"{name!r} is not a known dead-letter queue; known: {', '.join(queues) or 'none'}."
        )


@contextmanager
def _channel(alias: str) -> Iterator[Any]:
    """A channel of its own: closing it requeues whatever it left unacked."""
    channel = connections.get_sync(alias).get().channel()
    try:
        yield channel
    finally:
        if channel.is_open:
            channel.close()


def _depth(channel: Any, queue: str) -> int:
    counts = declare.passive(channel, queue)
    if counts is None:
        raise QueueNotFound(f"Queue {queue!r} does not exist on the broker.")
    return counts[0]


def browse(queue: str, limit: int = 50, *, alias: str = "default") -> list[DeadLetter]:
    """Up to ``limit`` messages from the head of ``queue``; all stay in the queue."""
    check_queue(queue)
    found = []
    with _channel(alias) as channel:
        for _ in range(min(limit, _depth(channel, queue))):
            delivery = declare.get(channel, queue)
            if delivery is None:
                break
            found.append(_dead_letter(delivery))
    return found


def _take(
    queue: str, wanted: Callable[[DeadLetter], bool], act: Callable[[DeadLetter], None], alias: str
) -> int:
    """Apply ``act`` to each wanted message, acking it after; requeue the others."""
    done = 0
    with _channel(alias) as channel:
        for _ in range(_depth(channel, queue)):
            delivery = declare.get(channel, queue)
            if delivery is None:
                break
            letter = _dead_letter(delivery)
            if wanted(letter):
                act(letter)
                channel.basic_ack(delivery.delivery_tag)
                done += 1
    return done


def _selector(message_ids: list[str] | None) -> Callable[[DeadLetter], bool]:
    if message_ids is None:
        return lambda _letter: True
    chosen = set(message_ids)
    return lambda letter: letter.message_id in chosen


def replay_one(letter: DeadLetter, alias: str = "default") -> None:
    """Publish ``letter`` back to its origin with confirms; raises if it cannot."""
    from rabbitbus import publishing

    origin = letter.origin()
    if origin is None:
        raise QueueNotFound(f"Message {letter.message_id!r} does not say where it came from.")
    headers = {k: v for k, v in letter.headers.items() if k not in DROPPED_ON_REPLAY}
    headers["x-rabbitbus-replayed"] = int(letter.headers.get("x-rabbitbus-replayed", 0) or 0) + 1
    if traces.on:
        traces.relink_replay(origin[0], origin[1], letter.message_id, headers)
    envelope = messages.Envelope(
        exchange=origin[0],
        routing_key=origin[1],
        body=letter.body,
        message_id=letter.message_id,
        content_type=letter.properties.get("content_type", "application/octet-stream"),
        timestamp=letter.properties.get("timestamp") or 0,
        app_id=letter.properties.get("app_id"),
        headers=headers,
        type=letter.properties.get("type"),
        correlation_id=letter.properties.get("correlation_id"),
    )
    result = publishing.publish_envelopes([envelope], connection=alias)
    if envelope.message_id in result.failed:
        raise result.failed[envelope.message_id]


def replay(queue: str, message_ids: list[str] | None = None, *, alias: str = "default") -> int:
    """Replay the messages with ``message_ids`` (all when None); returns how many.

    Each is published to its origin and confirmed before its copy is acked.
    Raises on the first message that cannot be published (it stays in the DLQ).
    """
    check_queue(queue)
    count = _take(queue, _selector(message_ids), lambda letter: replay_one(letter, alias), alias)
    logger.info("Replayed %d message(s) from %s", count, queue)
    return count


def discard(queue: str, message_ids: list[str] | None = None, *, alias: str = "default") -> int:
    """Delete the messages with ``message_ids`` (all when None); returns how many."""
    check_queue(queue)
    count = _take(queue, _selector(message_ids), lambda _letter: None, alias)
    logger.info("Discarded %d message(s) from %s", count, queue)
    return count


def purge(queue: str, *, alias: str = "default") -> int:
    """Empty ``queue``; returns how many messages the broker removed."""
    check_queue(queue)
    with _channel(alias) as channel:
        _depth(channel, queue)
        count = int(channel.queue_purge(queue).method.message_count)
    logger.info("Purged %d message(s) from %s", count, queue)
    return count
