"""Registered consumers: the ``@consumer`` decorator and what it records.

Handlers live in ``<app>/rabbit.py`` (autodiscovered by the app config).
Registering a consumer also adds its work queue, retry tiers and dead-letter
queue to :data:`rabbitbus.topology.registry`, so ``rabbit_setup`` and the
worker declare the same entities.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rabbitbus import topology
from rabbitbus.conf.schema import is_int, is_number
from rabbitbus.consuming import retries
from rabbitbus.exceptions import ConfigurationError

Handler = TypeVar("Handler", bound=Callable[..., Any])

#: Delivery limit of quorum work queues: it only catches crash loops (the
#: library's own retries republish, which resets the count), so it must exceed
#: the number of worker crashes one message may see. RabbitMQ dead-letters a
#: message that comes back unacked more times than the limit: after limit + 1
#: deliveries, its 21st crash by default (docs/consumers.md, "Crash loops").
DEFAULT_DELIVERY_LIMIT = 20
#: ``@consumer(transaction=...)``: a database transaction per message, or per batch.
MESSAGE = "message"
BATCH = "batch"


@dataclass(frozen=True)
class ConsumerSpec:
    """Everything the worker needs to run one handler."""

    name: str
    handler: Callable[..., Any]
    queue: str
    bindings: tuple[tuple[str, str], ...] = ()
    prefetch: int = 10
    concurrency: int = 1
    attempts: int = 5
    backoff: tuple[float, float] = (1.0, 60.0)
    idempotent: bool = False
    queue_type: str = "quorum"
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
    is_async: bool = field(default=False)
    #: ``"message"``: one database transaction per message; ``"batch"``: group commit.
    transaction: str = "message"
    #: The handler takes a list of messages (one batch's new ones) instead of one message.
    many: bool = False
    #: A ``def`` handler runs in the worker's event loop thread, not in a thread of its own.
    inline: bool = False

    @property
    def batched(self) -> bool:
        return self.transaction == BATCH

    @property
    def in_transaction(self) -> bool:
        """Whether each run of the handler is one database transaction with its inbox row
        (idempotent) or its batch (batched; a batch's message run alone included)."""
        return self.idempotent or self.batched

    @property
    def runs_on_loop(self) -> bool:
        """Whether the worker awaits the handler on its event loop; otherwise the handler
        runs in a worker thread (``async def`` ones under ``async_to_sync``), in a database
        transaction when :attr:`in_transaction`."""
        return self.is_async and not self.in_transaction

    @property
    def retry_tiers(self) -> list[int]:
        return retries.tiers(self.attempts, *self.backoff)

    @property
    def dead_letter_queue(self) -> str:
        return retries.dead_letter_queue(self.queue)

    def topology(self) -> list[topology.Entity]:
        """The work queue (dead-lettering to the DLQ), retry tiers, DLQ and bindings."""
        quorum = self.queue_type == "quorum"
        entities: list[topology.Entity] = [
            topology.Queue(
                self.queue,
                type=self.queue_type,
                dead_letter_exchange="",
                dead_letter_routing_key=self.dead_letter_queue,
                delivery_limit=self.delivery_limit if quorum else None,
            ),
            topology.Queue(self.dead_letter_queue, type=self.queue_type),
        ]
        entities += [
            topology.Queue(
                retries.retry_queue(self.queue, delay),
                type="classic",
                message_ttl=delay,
                dead_letter_exchange="",
                dead_letter_routing_key=self.queue,
            )
            for delay in self.retry_tiers
        ]
        entities += [topology.Binding(self.queue, ex, key) for ex, key in self.bindings]
        return entities


#: Consumers by name, in registration order.
consumers: dict[str, ConsumerSpec] = {}


def consumer(
    *,
    queue: str,
    bindings: Sequence[tuple[str, str]] = (),
    prefetch: int = 10,
    concurrency: int = 1,
    attempts: int = 5,
    backoff: tuple[float, float] = (1.0, 60.0),
    idempotent: bool = False,
    queue_type: str = "quorum",
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT,
    name: str | None = None,
    transaction: str = "message",
    many: bool = False,
    inline: bool = False,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``queue``.

    ``bindings`` are ``(exchange, routing_key)`` pairs (topic patterns allowed).
    A failing handler is retried ``attempts - 1`` times with exponential
    backoff ``(base, cap)`` seconds, then dead-lettered to ``<queue>.dlq``.
    ``idempotent=True`` records each message id in the processed-messages
    table in the handler's own DB transaction; an ``async def`` handler then
    runs in a worker thread under ``async_to_sync``, so its async ORM calls
    share that transaction.
    ``transaction="batch"`` runs the deliveries in hand (up to ``prefetch``) in one
    database transaction, inbox rows included, and acks them after it commits; if
    one fails, that batch is run again one message per transaction, so only the
    culprit is retried or dead-lettered.
    ``many=True`` (with ``transaction="batch"``) calls the handler once per batch with
    the list of its messages (an idempotent consumer's duplicates left out), so it can
    write their effects in one statement; a replayed message comes alone, in a list of one.
    ``inline=True`` runs a ``def`` handler (``concurrency=1``) in the worker's event loop
    thread instead of a thread of its own: no thread hop per message, for short handlers;
    the worker reads, acks and sends heartbeats only between them.
    ``name`` defaults to ``module.function``. Returns the function unchanged.
    Raises :class:`ConfigurationError` for invalid options.
    """

    def register(handler: Handler) -> Handler:
        full_name = name or f"{handler.__module__}.{handler.__qualname__}"
        spec = ConsumerSpec(
            name=full_name,
            handler=handler,
            queue=queue,
            bindings=_pairs(full_name, bindings),
            prefetch=prefetch,
            concurrency=concurrency,
            attempts=attempts,
            backoff=_backoff(full_name, backoff),
            idempotent=idempotent,
            queue_type=queue_type,
            delivery_limit=delivery_limit,
            is_async=inspect.iscoroutinefunction(handler),
            transaction=transaction,
            many=many,
            inline=inline,
        )
        add(spec)
        return handler

    return register


def _pairs(name: str, bindings: Any) -> tuple[tuple[str, str], ...]:
    """``bindings`` as (exchange, routing_key) pairs of strings, or ConfigurationError."""
    expected = "a list of (exchange, routing_key) pairs of strings"
    if isinstance(bindings, str) or not isinstance(bindings, Sequence):
        raise ConfigurationError(
            f"Consumer {name!r}: bindings must be {expected}, not {bindings!r}."
        )
    for binding in bindings:
        if not (
            isinstance(binding, Sequence)
            and not isinstance(binding, str)
            and len(binding) == 2
            and all(isinstance(part, str) for part in binding)
        ):
            raise ConfigurationError(
                f"Consumer {name!r}: bindings must be {expected}; {binding!r} is not one."
            )
    return tuple((exchange, key) for exchange, key in bindings)


def _backoff(name: str, backoff: Any) -> tuple[float, float]:
    """``backoff`` as (base, cap) seconds, or ConfigurationError (their order: validate)."""
    if not (
        isinstance(backoff, Sequence)
        and len(backoff) == 2
        and all(is_number(seconds) for seconds in backoff)
    ):
        raise ConfigurationError(
            f"Consumer {name!r}: backoff must be (base, cap) seconds, not {backoff!r}."
        )
    return float(backoff[0]), float(backoff[1])


def _type_problem(spec: ConsumerSpec) -> str | None:
    """The first option of the wrong type (a bool is no int), before any comparison."""
    if not isinstance(spec.queue, str):
        return f"queue must be a non-empty name, not {spec.queue!r}"
    for option in ("prefetch", "concurrency", "attempts", "delivery_limit"):
        value = getattr(spec, option)
        if option == "delivery_limit" and value is None:
            continue
        if not is_int(value):
            return f"{option} must be an int, not {value!r}"
    return None


def validate(spec: ConsumerSpec) -> None:
    """Raise :class:`ConfigurationError` if ``spec`` cannot work."""
    wrong_type = _type_problem(spec)
    if wrong_type:
        raise ConfigurationError(f"Consumer {spec.name!r}: {wrong_type}.")
    problems = [
        (not spec.queue, "queue must be a non-empty name"),
        (spec.prefetch < 1, "prefetch must be at least 1"),
        (spec.concurrency < 1, "concurrency must be at least 1"),
        (spec.attempts < 1, "attempts must be at least 1"),
        (
            not 0 < spec.backoff[0] <= spec.backoff[1],
            "backoff must be (base, cap), 0 < base <= cap",
        ),
        (spec.queue_type not in ("quorum", "classic"), "queue_type must be 'quorum' or 'classic'"),
        (
            spec.transaction not in (MESSAGE, BATCH),
            f"transaction must be {MESSAGE!r} or {BATCH!r}",
        ),
        (
            spec.many and not spec.batched,
            f"many=True needs transaction={BATCH!r} (the handler takes one batch's messages)",
        ),
        (
            spec.inline and spec.is_async,
            "inline=True is for def handlers (an async def one runs on the event loop already)",
        ),
        (
            spec.inline and spec.concurrency != 1,
            "inline=True runs one message at a time in the worker's event loop thread: "
            "concurrency must be 1",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise ConfigurationError(f"Consumer {spec.name!r}: {message}.")


def add(spec: ConsumerSpec) -> None:
    """Register ``spec`` (replacing one of the same name) and its topology."""
    validate(spec)
    for other in consumers.values():
        if other.queue == spec.queue and other.name != spec.name:
            raise ConfigurationError(
                f"Consumers {other.name!r} and {spec.name!r} both consume {spec.queue!r}."
            )
    consumers[spec.name] = spec
    topology.registry.add(*spec.topology())


def select(names: Sequence[str] = ()) -> list[ConsumerSpec]:
    """The named consumers (all when ``names`` is empty).

    A name is a consumer's full name, or its handler's function name when only
    one consumer has that function name. Raises :class:`ConfigurationError`
    for an unknown name (listing the registered ones) or an ambiguous one
    (listing the candidates).
    """
    if not names:
        return list(consumers.values())
    return [find(name) for name in names]


def find(name: str) -> ConsumerSpec:
    """The consumer called ``name``, or whose function is called ``name``; see :func:`select`."""
    if name in consumers:
        return consumers[name]
    candidates = [spec for spec in consumers.values() if spec.handler.__name__ == name]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        listed = ", ".join(spec.name for spec in candidates)
        raise ConfigurationError(f"Consumer name {name!r} is ambiguous: it could be {listed}.")
    known = ", ".join(consumers) or "none"
    raise ConfigurationError(f"Unknown consumer {name!r}; registered: {known}.")
