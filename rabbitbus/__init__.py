"""rabbitbus: RabbitMQ as a first-class part of a Django project.

The public API is imported lazily: ``import rabbitbus`` touches no settings,
database or network, and does not even import the AMQP clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "publish": "rabbitbus.publishing",
    "publish_many": "rabbitbus.publishing",
    "apublish": "rabbitbus.publishing",
    "apublish_many": "rabbitbus.publishing",
    "PublishResult": "rabbitbus.publishing",
    "Message": "rabbitbus.messages",
    "bridge": "rabbitbus.outbox.bridges",
    "publish_on_commit": "rabbitbus.outbox.on_commit",
    "call": "rabbitbus.rpc",
    "acall": "rabbitbus.rpc",
    "consumer": "rabbitbus.consuming.registry",
    "ReceivedMessage": "rabbitbus.messages",
    "Reject": "rabbitbus.exceptions",
    "Retry": "rabbitbus.exceptions",
    "RpcNotSent": "rabbitbus.exceptions",
}

if TYPE_CHECKING:
    from rabbitbus.consuming.registry import consumer
    from rabbitbus.exceptions import Reject, Retry, RpcNotSent
    from rabbitbus.messages import Message, ReceivedMessage
    from rabbitbus.outbox.bridges import bridge
    from rabbitbus.outbox.on_commit import publish_on_commit
    from rabbitbus.publishing import PublishResult, apublish, apublish_many, publish, publish_many
    from rabbitbus.rpc import acall, call


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rabbitbus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "Message",
    "PublishResult",
    "ReceivedMessage",
    "Reject",
    "Retry",
    "RpcNotSent",
    "acall",
    "apublish",
    "apublish_many",
    "bridge",
    "call",
    "consumer",
    "publish",
    "publish_many",
    "publish_on_commit",
]
