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

from typing import Protocol

from rabbitbus import connections
from rabbitbus.rpc_async import AsyncRpcClient
from rabbitbus.rpc_requests import (
    CONSUMER_CHECK_LIMIT,
    Reply,
    Request,
    no_route,
    request,
    timed_out,
)
from rabbitbus.rpc_sync import SyncRpcClient

__all__ = [
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
