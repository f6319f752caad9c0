"""A ``django.tasks`` backend on RabbitMQ: ``TASKS = {"default": {"BACKEND":
"rabbitbus.tasks.RabbitMQBackend", ...}}`` (see docs/tasks.md).

Imported lazily, like :mod:`rabbitbus`: ``rabbitbus.tasks.options`` (read by the
app config to declare the queues) does not import ``django.tasks`` or its backport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rabbitbus.tasks.backend import RabbitMQBackend


def __getattr__(name: str) -> Any:
    if name == "RabbitMQBackend":
        from rabbitbus.tasks.backend import RabbitMQBackend

        return RabbitMQBackend
    raise AttributeError(f"module 'rabbitbus.tasks' has no attribute {name!r}")


__all__ = ["RabbitMQBackend"]
