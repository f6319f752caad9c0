"""The RPC clients behind :func:`rabbitbus.rpc.call` (pika) and :func:`~rabbitbus.rpc.acall`.

Both use direct reply-to (https://www.rabbitmq.com/docs/direct-reply-to): no
reply queue to declare, replies go straight to the consuming channel. A
missing server queue fails the call at once with :class:`NoRoute` (the sync
request is ``mandatory`` and comes back as a ``basic.return``; the async
client checks the queue, see :class:`AsyncRpcClient`). Every request carries
``expiration`` = timeout, so a request expires in its queue when its caller
gives up, and its deadline (see :mod:`rabbitbus.rpc`), so a server that took
it meanwhile does not start it either.
"""

from __future__ import annotations

from typing import Any, Protocol

from rabbitbus.observability import calls, metrics, traces
from rabbitbus.rpc.async_client import AsyncRpcClient
from rabbitbus.rpc.procedures import DEFAULT_TIMEOUT, result_from_reply
from rabbitbus.rpc.requests import (
    CONSUMER_CHECK_LIMIT,
    Reply,
    Request,
    checked_call,
    no_route,
    request,
    timed_out,
)
from rabbitbus.rpc.sync_client import SyncRpcClient
from rabbitbus.transport import connections

__all__ = [
    "acall",
    "call",
    "CONSUMER_CHECK_LIMIT",
    "AsyncRpcClient",
    "Reply",
    "Request",
    "RpcInterceptor",
    "SyncRpcClient",
    "async_client",
    "interceptor",
    "no_route",
    "request",
    "sync_client",
    "timed_out",
]


class RpcInterceptor(Protocol):
    """Answers every call in place of the broker: a reply ``(body, content_type)``, or
    raises what the client would (:class:`NoRoute`, :class:`RpcTimeout`...)."""

    def call(self, name: str, req: Request, timeout: float) -> Reply: ...

    async def acall(self, name: str, req: Request, timeout: float) -> Reply: ...


#: When set (by :mod:`rabbitbus.testing`), :func:`rabbitbus.rpc.call` and
#: :func:`~rabbitbus.rpc.acall` go to it instead of a broker.
interceptor: RpcInterceptor | None = None


def sync_client(alias: str = "default") -> SyncRpcClient:
    """This thread's RPC client for connection ``alias``."""
    conn = connections.get_sync(alias)
    if conn.rpc_client is None:
        conn.rpc_client = SyncRpcClient(conn)
    return conn.rpc_client


def async_client(alias: str = "default") -> AsyncRpcClient:
    """The running loop's RPC client for connection ``alias``."""
    conn = connections.get_async(alias)
    if conn.rpc_client is None:
        conn.rpc_client = AsyncRpcClient(conn)
    return conn.rpc_client


def call(
    name: str,
    *args: Any,
    timeout: float | None = DEFAULT_TIMEOUT,
    connection: str = "default",
    **kwargs: Any,
) -> Any:
    """Call remote procedure ``name`` from sync code and return its JSON result.

    Raises :class:`NoRoute` at once when no queue serves ``name``,
    :class:`RpcTimeout` (a ``TimeoutError``) after ``timeout`` seconds (its
    subclass :class:`NoServer` when the queue exists but no server consumes it),
    :class:`RemoteError` or a registered exception type when the procedure
    raised, :class:`RpcNotSent` (a :class:`BrokerUnavailable`) when no broker
    could be reached within ``timeout`` (and ``RECONNECT_TIMEOUT``): the request
    never left; and :class:`BrokerConnectionError` when the connection was lost
    during the call (the outcome is unknown; the next call reconnects).
    Returns or raises within ``timeout`` plus
    :data:`CONSUMER_CHECK_LIMIT` once connected, whatever
    the broker's state (down, blocked by an alarm, half-open).

    ``timeout`` is in seconds, :data:`DEFAULT_TIMEOUT` for ``None``. A ``timeout`` that
    is not a positive number, or a ``name`` that is not a ``str`` (of at most 251 bytes),
    raises :class:`InvalidArgument` (a ``ValueError`` and a ``TypeError``) before
    anything is sent.
    """
    timeout = checked_call(name, timeout)
    if interceptor is not None:
        req = request(name, args, kwargs, timeout)
        return result_from_reply(*interceptor.call(name, req, timeout))
    if metrics.on or traces.on:
        return calls.observed(
            name, lambda: sync_client(connection).call(name, args, kwargs, timeout)
        )
    return sync_client(connection).call(name, args, kwargs, timeout)


async def acall(
    name: str,
    *args: Any,
    timeout: float | None = DEFAULT_TIMEOUT,
    connection: str = "default",
    **kwargs: Any,
) -> Any:
    """The async twin of :func:`call`: same arguments, result and errors."""
    timeout = checked_call(name, timeout)
    if interceptor is not None:
        req = request(name, args, kwargs, timeout)
        return result_from_reply(*await interceptor.acall(name, req, timeout))
    if metrics.on or traces.on:
        return await calls.aobserved(
            name, async_client(connection).call(name, args, kwargs, timeout)
        )
    return await async_client(connection).call(name, args, kwargs, timeout)
