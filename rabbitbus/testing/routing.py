"""RabbitMQ's routing rules over a :class:`~rabbitbus.topology.Topology`. No I/O.

https://www.rabbitmq.com/tutorials/amqp-concepts#exchanges: the default
exchange routes to the queue named by the routing key; ``direct`` by equal
key; ``fanout`` to every bound queue; ``topic`` by pattern (``*`` one word,
``#`` zero or more); ``headers`` by the binding's arguments (``x-match``
``all``, the default, or ``any``; ``-with-x`` variants also compare ``x-``
keys). An exchange's ``alternate-exchange`` argument takes what it cannot
route. The built-in ``amq.*`` exchanges exist in every virtual host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rabbitbus import topology
from rabbitbus.exceptions import PublishError
from rabbitbus.transport.confirms import channel_error

#: Exchanges every virtual host has, by type.
BUILT_IN = {
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether ``routing_key`` matches topic binding ``pattern``."""
    return _words_match(_words(pattern), _words(routing_key))


def _words(key: str) -> list[str]:
    # RabbitMQ splits "" into no words at all (not one empty word): "#" matches it, "*" not.
    return key.split(".") if key else []


def _words_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _words_match(rest, words[1:])


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    """Whether message ``headers`` satisfy a headers-exchange binding's ``arguments``."""
    mode = str(arguments.get("x-match", "all"))
    with_x = mode.endswith("-with-x")
    wanted = {
        key: value
        for key, value in arguments.items()
        if key != "x-match" and (with_x or not key.startswith("x-"))
    }
    found = [key in headers and headers[key] == value for key, value in wanted.items()]
    return any(found) if mode.startswith("any") else all(found)


def exchange_type(known: topology.Topology, exchange: str) -> str:
    """The type of ``exchange``; raises :class:`ExchangeNotFound` as the broker does."""
    if exchange in known.exchanges:
        return known.exchanges[exchange].type
    if exchange in BUILT_IN:
        return BUILT_IN[exchange]
    raise missing_exchange(exchange)


def missing_exchange(exchange: str) -> PublishError:
    return channel_error(404, f"NOT_FOUND - no exchange '{exchange}' in vhost (in memory)")


def route(
    known: topology.Topology, exchange: str, routing_key: str, headers: Mapping[str, Any]
) -> list[str]:
    """The queues a message published to ``exchange`` reaches (each once, sorted).

    Raises :class:`ExchangeNotFound` for an exchange ``known`` does not have.
    """
    if exchange == "":
        return [routing_key] if routing_key in known.queues else []
    kind = exchange_type(known, exchange)
    queues = {
        binding.queue
        for binding in known.bindings.values()
        if binding.exchange == exchange and _binds(kind, binding, routing_key, headers)
    }
    alternate = (
        known.exchanges[exchange].arguments.get("alternate-exchange")
        if (exchange in known.exchanges)
        else None
    )
    if not queues and alternate:
        return route(known, str(alternate), routing_key, headers)
    return sorted(queues)


def _binds(
    kind: str, binding: topology.Binding, routing_key: str, headers: Mapping[str, Any]
) -> bool:
    if kind == "fanout":
        return True
    if kind == "topic":
        return topic_matches(binding.routing_key, routing_key)
    if kind == "headers":
        return headers_match(binding.arguments, headers)
    return binding.routing_key == routing_key  # direct, and any plugin type by key
