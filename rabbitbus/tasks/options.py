"""The backend's ``OPTIONS``, parsed once, and the AMQP names they lead to. No I/O.

Each Django queue name has one durable AMQP work queue ``<QUEUE_PREFIX><name>``,
a dead-letter queue ``<queue>.dlq`` for poison tasks, and delay queues
``<queue>.delay.<ms>`` for ``run_after``: classic queues with a fixed
``x-message-ttl`` that dead-letter back to the work queue (one TTL per queue,
so no head-of-line blocking: https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rabbitbus import topology
from rabbitbus.conf.schema import is_number
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
MAX_PRIORITY_RANGE = (1, 255)


# Each option's check: None when its value is good, else what it must be. A bool is an
# int to Python, so the number checks refuse it: True is no priority and no day count.


def _connection(value: Any) -> str | None:
    from rabbitbus.conf import settings

    aliases = settings.CONNECTIONS
    if not isinstance(aliases, dict):  # the RABBITBUS checks (E003) report this one
        return None if isinstance(value, str) else "a RABBITBUS['CONNECTIONS'] alias"
    known = isinstance(value, str) and value in aliases
    return None if known else f"one of the RABBITBUS['CONNECTIONS'] {sorted(aliases)}"


def _database(value: Any) -> str | None:
    from django.conf import settings

    aliases = sorted(settings.DATABASES)
    known = isinstance(value, str) and value in aliases
    return None if known else f"one of the DATABASES {aliases}"


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _delivery(value: Any) -> str | None:
    return None if value in DELIVERIES else f"one of {DELIVERIES}"


def _max_priority(value: Any) -> str | None:
    low, high = MAX_PRIORITY_RANGE
    if value is None or (type(value) is int and low <= value <= high):
        return None
    return f"None or a whole number {low}..{high}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "True or False"


def _positive_days(value: Any) -> str | None:
    if is_number(value) and math.isfinite(value) and value > 0:
        return None
    return "a positive number of days (an int or a float)"


EXPECTATIONS: dict[str, Callable[[Any], str | None]] = {
    "CONNECTION": _connection,
    "DATABASE": _database,
    "QUEUE_PREFIX": _string,
    "DELIVERY": _delivery,
    "MAX_PRIORITY": _max_priority,
    "RECORD_ENQUEUED": _boolean,
    "RESULT_RETENTION_DAYS": _positive_days,
}


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
    def parse(cls, raw: Any, alias: str | None = None) -> TaskOptions:
        """Raises :class:`ConfigurationError` for an unknown key or a bad value, naming
        the option (of ``TASKS[alias]`` when given), the value and what it must be."""
        where = "OPTIONS" if alias is None else f"TASKS[{alias!r}]['OPTIONS']"
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{where} must be a dict, not {raw!r}.")
        unknown = sorted(set(raw) - set(DEFAULTS))
        if unknown:
            raise ConfigurationError(
                f"Unknown keys {unknown} in {where}; known: {sorted(DEFAULTS)}."
            )
        merged = {**DEFAULTS, **raw}
        for key, expectation in EXPECTATIONS.items():
            expected = expectation(merged[key])
            if expected is not None:
                raise ConfigurationError(
                    f"{where}['{key}'] must be {expected}, not {merged[key]!r}."
                )
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


def backend_topology(params: dict[str, Any], alias: str | None = None) -> topology.Topology:
    """Every entity one backend's ``QUEUES`` need (``alias`` names it in errors)."""
    options = TaskOptions.parse(params.get("OPTIONS", {}), alias)
    result = topology.Topology()
    for queue_name in params.get("QUEUES") or ["default"]:
        result.add(*options.entities(queue_name))
    return result


def register_topology() -> None:
    """Add the configured backends' queues to the code registry (``rabbit_setup``)."""
    for alias, params in configured_backends().items():
        topology.registry.add(*backend_topology(params, alias))
