"""Exchanges, queues and bindings: described as data, declared by one routine.

Entities come from ``RABBITBUS["EXCHANGES"]`` / ``["QUEUES"]`` and from code
(``topology.registry.add(...)``, used by consumers and RPC servers). Parsing is
pure; :func:`rabbitbus.transport.declare.declare` (pika) and
:func:`~rabbitbus.transport.declare.adeclare` (aiormq) only move the same operations over
the wire, and :func:`translate_error` tells what a refusal means. Declaring is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rabbitbus.conf import BindingOptions, ExchangeOptions, QueueOptions, defaults, read
from rabbitbus.exceptions import (
    ConfigurationError,
    QueueNodeDown,
    TopologyConflict,
    TopologyError,
)

#: Entities declared in code take the defaults of their ``EXCHANGES``/``QUEUES`` settings.
_EXCHANGE = defaults(ExchangeOptions)
_QUEUE = defaults(QueueOptions)


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str = _EXCHANGE["TYPE"]
    durable: bool = _EXCHANGE["DURABLE"]
    auto_delete: bool = _EXCHANGE["AUTO_DELETE"]
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Queue:
    """A queue. Quorum and durable by default, as work queues should be."""

    name: str
    type: str = _QUEUE["TYPE"]
    durable: bool = _QUEUE["DURABLE"]
    auto_delete: bool = _QUEUE["AUTO_DELETE"]
    exclusive: bool = _QUEUE["EXCLUSIVE"]
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    delivery_limit: int | None = None
    message_ttl: int | None = None
    max_length: int | None = None
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)

    def broker_arguments(self) -> dict[str, Any]:
        """The ``x-`` arguments RabbitMQ sees for this queue."""
        optional = {
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.dead_letter_routing_key,
            "x-delivery-limit": self.delivery_limit,
            "x-message-ttl": self.message_ttl,
            "x-max-length": self.max_length,
        }
        arguments: dict[str, Any] = {"x-queue-type": self.type}
        arguments.update({key: value for key, value in optional.items() if value is not None})
        arguments.update(self.arguments)
        return arguments


@dataclass(frozen=True)
class Binding:
    queue: str
    exchange: str
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)


Entity = Exchange | Queue | Binding


class Topology:
    """An ordered set of entities: exchanges, then queues, then bindings."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.bindings: dict[tuple[str, str, str], Binding] = {}

    def add(self, *entities: Entity) -> None:
        """Add entities; re-adding an identical one is a no-op."""
        for entity in entities:
            if isinstance(entity, Exchange):
                self.exchanges[entity.name] = entity
            elif isinstance(entity, Queue):
                self.queues[entity.name] = entity
            else:
                self.bindings[(entity.queue, entity.exchange, entity.routing_key)] = entity

    def merge(self, other: Topology) -> Topology:
        merged = Topology()
        for source in (self, other):
            merged.add(*source)
        return merged

    def __iter__(self) -> Iterator[Entity]:
        yield from self.exchanges.values()
        yield from self.queues.values()
        yield from self.bindings.values()

    def __len__(self) -> int:
        return len(self.exchanges) + len(self.queues) + len(self.bindings)


#: Entities declared from code (consumers, RPC servers, apps' rabbit.py).
registry = Topology()


def _binding_pairs(raw: Any) -> Iterator[tuple[str, str]]:
    for binding in raw:
        if isinstance(binding, dict):
            options = read(BindingOptions, binding, "a binding")
            yield options.exchange, options.routing_key
        else:
            yield binding[0], binding[1]


def from_settings(exchanges: dict[str, Any], queues: dict[str, Any]) -> Topology:
    """Parse ``EXCHANGES`` and ``QUEUES``; raises :class:`ConfigurationError`."""
    from rabbitbus.checks.settings import topology_errors

    errors = [error for error in topology_errors(exchanges, queues) if error.is_serious()]
    if errors:
        raise ConfigurationError(f"{errors[0].id}: {errors[0].msg}")
    topology = Topology()
    for name, raw in exchanges.items():
        where = f"RABBITBUS['EXCHANGES'][{name!r}]"
        entry = read(ExchangeOptions, {"TYPE": raw} if isinstance(raw, str) else raw, where)
        topology.add(
            Exchange(
                name,
                type=entry.type,
                durable=entry.durable,
                auto_delete=entry.auto_delete,
                arguments=entry.arguments,
            )
        )
    for name, raw in queues.items():
        queue = read(QueueOptions, raw, f"RABBITBUS['QUEUES'][{name!r}]")
        topology.add(_queue_from_settings(name, queue))
        for exchange, routing_key in _binding_pairs(queue.bindings):
            topology.add(Binding(name, exchange, routing_key))
    return topology


def _queue_from_settings(name: str, options: QueueOptions) -> Queue:
    return Queue(
        name,
        type=options.type,
        durable=options.durable,
        auto_delete=options.auto_delete,
        exclusive=options.exclusive,
        dead_letter_exchange=options.dead_letter_exchange,
        dead_letter_routing_key=options.dead_letter_routing_key,
        delivery_limit=options.delivery_limit,
        message_ttl=options.message_ttl,
        max_length=options.max_length,
        arguments=options.arguments,
    )


def configured() -> Topology:
    """Everything known: the settings' entities plus the code registry."""
    from rabbitbus.conf import settings

    return from_settings(settings.EXCHANGES, settings.QUEUES).merge(registry)


# -- declaring -------------------------------------------------------------

_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'")


def translate_error(entity: Entity, reply_code: int, reply_text: str) -> TopologyError:
    """Turn a broker refusal into an error that names the entity and argument."""
    kind = type(entity).__name__.lower()
    name = getattr(entity, "name", None) or f"{entity.exchange}->{entity.queue}"  # type: ignore[union-attr]
    if reply_code == 406:
        match = _INEQUIVALENT.search(reply_text)
        argument = match.group(1) if match else "an argument"
        return TopologyConflict(
            f"{kind} {name!r} already exists with a different {argument!r} "
            f"(broker said: {reply_text}). Delete it or match the existing declaration."
        )
    if reply_code == 404 and "home node" in reply_text:
        return QueueNodeDown(
            f"Cannot declare {kind} {name!r}: its home node is down ({reply_text}); "
            "a classic queue lives on one node of a cluster (quorum queues are replicated)."
        )
    return TopologyError(f"Cannot declare {kind} {name!r}: {reply_code} {reply_text}")


def describe(entity: Entity) -> str:
    """One line for ``rabbit_setup`` output."""
    if isinstance(entity, Exchange):
        return f"exchange {entity.name} ({entity.type})"
    if isinstance(entity, Queue):
        return f"queue {entity.name} ({entity.type})"
    return f"binding {entity.exchange} -[{entity.routing_key}]-> {entity.queue}"
