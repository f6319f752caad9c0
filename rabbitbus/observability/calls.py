"""``rpc.call`` and ``rpc.acall`` observed: a client span around them, and their count."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rabbitbus.observability import metrics, traces


def observed(procedure: str, call: Callable[[], Any]) -> Any:
    """Run a sync call under a client span (the request carries its context), counted."""
    with traces.rpc_span(procedure, server=False):
        return metrics.rpc_call(procedure, call) if metrics.on else call()


async def aobserved(procedure: str, call: Awaitable[Any]) -> Any:
    """The async twin of :func:`observed`."""
    with traces.rpc_span(procedure, server=False):
        return await (metrics.arpc_call(procedure, call) if metrics.on else call)
