"""Consumers registered for one test (unique queues), removed afterwards."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rabbitbus import topology
from rabbitbus.consuming import registry
from rabbitbus.consuming.registry import ConsumerSpec

Register = Callable[..., ConsumerSpec]


def unregister(spec: ConsumerSpec) -> None:
    """Forget ``spec`` and the topology it added."""
    registry.consumers.pop(spec.name, None)
    for entity in spec.topology():
        if isinstance(entity, topology.Queue):
            topology.registry.queues.pop(entity.name, None)
        elif isinstance(entity, topology.Binding):
            key = (entity.queue, entity.exchange, entity.routing_key)
            topology.registry.bindings.pop(key, None)


@pytest.fixture
def register() -> Iterator[Register]:
    """``register(handler, **ConsumerSpec fields)``: a consumer on a queue of its own."""
    added: list[ConsumerSpec] = []

    def add(handler: Callable[..., Any], **options: Any) -> ConsumerSpec:
        suffix = uuid.uuid4().hex[:6]
        options.setdefault("queue", f"testing.{handler.__name__}.{suffix}")
        options.setdefault("bindings", (("shop", "order.placed"),))
        spec = ConsumerSpec(
            name=f"testing.{handler.__name__}.{suffix}",
            handler=handler,
            is_async=inspect.iscoroutinefunction(handler),
            **options,
        )
        registry.add(spec)
        added.append(spec)
        return spec

    yield add
    for spec in added:
        unregister(spec)
