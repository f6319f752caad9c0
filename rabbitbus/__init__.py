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
    "consumer": "rabbitbus.registry",
    "ReceivedMessage": "rabbitbus.dispatch",
    "Reject": "rabbitbus.exceptions",
    "Retry": "rabbitbus.exceptions",
}

if TYPE_CHECKING:
    from rabbitbus.dispatch import ReceivedMessage
    from rabbitbus.exceptions import Reject, Retry
    from rabbitbus.messages import Message
    from rabbitbus.publishing import PublishResult, apublish, apublish_many, publish, publish_many
    from rabbitbus.registry import consumer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rabbitbus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Message",
    "PublishResult",
    "ReceivedMessage",
    "Reject",
    "Retry",
    "apublish",
    "apublish_many",
    "consumer",
    "publish",
    "publish_many",
]
