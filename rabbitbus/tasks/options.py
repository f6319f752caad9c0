"""The backend's ``OPTIONS``, parsed once, and the AMQP names they lead to. No I/O.

Each Django queue name has one durable AMQP work queue ``<QUEUE_PREFIX><name>``,
a dead-letter queue ``<queue>.dlq`` for poison tasks, and delay queues
``<queue>.delay.<ms>`` for ``run_after``: classic queues with a fixed
``x-message-ttl`` that dead-letter back to the work queue (one TTL per queue,
so no head-of-line blocking: https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rabbitbus import topology
from rabbitbus.consuming import retries
from rabbitbus.consuming.registry import DEFAULT_DELIVERY_LIMIT
from rabbitbus.exceptions import ConfigurationError

BACKEND_PATHS = ("rabbitbus.tasks.RabbitMQBackend", "rabbitbus.tasks.backend.RabbitMQBackend")

#: Delay tiers (ms): 1 s, 4 s, 16 s ... 4**10 s (12 days). A deferred task hops through
#: the longest tier not past its ``run_after`` until it is due: never early, < 1 s late.
DELAY_TIERS_MS: tuple[int, ...] = tuple(1000 * 4**power for power in range(11))

#: Django's priority range, mapped onto AMQP's 0..MAX_PRIORITY.
DJANGO_PRIORITY_RANGE = (-100, 100)

DEFAULTS: dict[str, Any] = {
    "CONNECTION": "default",
    "DATABASE": "default",
    "QUEUE_PREFIX": "tasks.",
    "DELIVERY": "on_commit",
    "MAX_PRIORITY": None,
    "RECORD_ENQUEUED": True,
    "RESULT_RETENTION_DAYS": 7,
}
DELIVERIES = ("on_commit", "outbox")


@dataclass(frozen=True)
class TaskOptions:
    """``TASKS[alias]["OPTIONS"]`` with its defaults filled in."""

    connection: str
    database: str
    queue_prefix: str
    delivery: str
    max_priority: int | None
    record_enqueued: bool
    result_retention_days: float

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TaskOptions:
        """Raises :class:`ConfigurationError` for an unknown key or a bad value."""
        unknown = sorted(set(raw) - set(DEFAULTS))
        if unknown:
            raise ConfigurationError(
                f"Unknown task backend OPTIONS {unknown}; known: {sorted(DEFAULTS)}."
            )
        merged = {**DEFAULTS, **raw}
        if merged["DELIVERY"] not in DELIVERIES:
            raise ConfigurationError(f"OPTIONS['DELIVERY'] must be one of {DELIVERIES}.")
        top = merged["MAX_PRIORITY"]
        if top is not None and (not isinstance(top, int) or not 1 <= top <= 255):
            raise ConfigurationError("OPTIONS['MAX_PRIORITY'] must be None or 1..255.")
        return cls(**{key.lower(): value for key, value in merged.items()})

    def queue(self, queue_name: str) -> str:
        """The AMQP work queue of Django queue ``queue_name``."""
        return f"{self.queue_prefix}{queue_name}"

    def amqp_priority(self, priority: int) -> int | None:
        """Django's -100..100 scaled onto 0..MAX_PRIORITY (None without priorities)."""
        if self.max_priority is None:
            return None
        low, high = DJANGO_PRIORITY_RANGE
        return round((priority - low) * self.max_priority / (high - low))

    def entities(self, queue_name: str) -> list[topology.Entity]:
        """Work queue, dead-letter queue and delay queues of one Django queue."""
        queue = self.queue(queue_name)
        dlq = retries.dead_letter_queue(queue)
        if self.max_priority is None:
            work = topology.Queue(
                queue,
                dead_letter_exchange="",
                dead_letter_routing_key=dlq,
                delivery_limit=DEFAULT_DELIVERY_LIMIT,
            )
        else:  # priorities need a classic queue on RabbitMQ 3.x
            work = topology.Queue(
                queue,
                type="classic",
                dead_letter_exchange="",
                dead_letter_routing_key=dlq,
                arguments={"x-max-priority": self.max_priority},
            )
        delays = [
            topology.Queue(
                delay_queue(queue, ms),
                type="classic",
                message_ttl=ms,
                dead_letter_exchange="",
                dead_letter_routing_key=queue,
            )
            for ms in DELAY_TIERS_MS
        ]
        return [work, topology.Queue(dlq, type=work.type), *delays]


def delay_queue(queue: str, delay_ms: int) -> str:
    return f"{queue}.delay.{delay_ms}"


def delay_tier(remaining: float) -> int:
    """The longest tier (ms) not longer than ``remaining`` seconds, else the shortest."""
    fitting = [ms for ms in DELAY_TIERS_MS if ms <= remaining * 1000]
    return fitting[-1] if fitting else DELAY_TIERS_MS[0]


def configured_backends() -> dict[str, dict[str, Any]]:
    """``TASKS`` entries that use this backend, by alias (read without importing it)."""
    from django.conf import settings

    tasks = getattr(settings, "TASKS", None) or {}
    return {alias: params for alias, params in tasks.items() if params["BACKEND"] in BACKEND_PATHS}


def backend_topology(params: dict[str, Any]) -> topology.Topology:
    """Every entity one backend's ``QUEUES`` need."""
    options = TaskOptions.parse(params.get("OPTIONS", {}))
    result = topology.Topology()
    for queue_name in params.get("QUEUES") or ["default"]:
        result.add(*options.entities(queue_name))
    return result


def register_topology() -> None:
    """Add the configured backends' queues to the code registry (``rabbit_setup``)."""
    for params in configured_backends().values():
        topology.registry.add(*backend_topology(params))
