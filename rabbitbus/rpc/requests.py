"""What both RPC clients send and raise: the request on the wire, and the errors.

Shared by :mod:`rabbitbus.rpc.sync_client` (pika) and :mod:`rabbitbus.rpc.async_client` (aiormq);
:mod:`rabbitbus.rpc.client` puts them together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pamqp.commands import Basic

from rabbitbus import messages, serializers
from rabbitbus.exceptions import BrokerConnectionError, NoRoute, NoServer, RpcNotSent, RpcTimeout
from rabbitbus.observability import traces
from rabbitbus.rpc.procedures import (
    DEFAULT_TIMEOUT,
    DIRECT_REPLY_TO,
    REQUEST_TYPE,
    deadline_after,
    queue_name,
)
from rabbitbus.transport import frames

#: Longest the "does any server consume the queue?" check after a timeout may take
#: (seconds): a call returns within its timeout plus this, whatever the broker's state.
CONSUMER_CHECK_LIMIT = 1.0

Reply = tuple[bytes, str | None]


@dataclass(frozen=True, slots=True)
class Request:
    """One call on the wire: transient, expiring with the caller's patience.

    Only what a server needs is sent (no ``message_id``, ``timestamp`` or
    ``app_id`` as published messages carry): every property costs encoding on
    both sides of every call.
    """

    routing_key: str
    body: bytes
    content_type: str
    correlation_id: str
    expiration: str
    #: Epoch milliseconds after which no server starts it (``frames.DEADLINE_HEADER``).
    deadline: int
    #: The caller's trace context (``traceparent``...), when tracing (rabbitbus.observability).
    trace: dict[str, str] | None = None


def checked_call(name: object, timeout: object) -> float:
    """The timeout of a call to ``name``: ``timeout`` seconds, :data:`DEFAULT_TIMEOUT` for
    ``None``. Raises :class:`InvalidArgument` (before anything is sent, for ``call`` and
    ``acall`` alike) unless ``timeout`` is a positive number and ``name`` a ``str`` whose
    queue name AMQP can carry."""
    queue = queue_name(messages.checked_name(name, "procedure name"))
    messages.checked_name(queue, "procedure's queue name")
    seconds = messages.checked_timeout(timeout, f"the default, {DEFAULT_TIMEOUT:g}")
    return DEFAULT_TIMEOUT if seconds is None else seconds


def request(name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Request:
    """The request for ``name``; raises :class:`InvalidArgument` for a bad name or timeout
    (:func:`checked_call`), :class:`SerializationError` or :class:`MessageTooLarge` for bad
    arguments."""
    timeout = checked_call(name, timeout)
    serializer = serializers.default()
    body = messages.checked_size(serializer.dumps({"args": list(args), "kwargs": kwargs}))
    return Request(
        routing_key=queue_name(name),
        body=body,
        content_type=serializer.content_type,
        correlation_id=uuid.uuid4().hex,
        expiration=str(int(timeout * 1000)),
        deadline=deadline_after(timeout),
        trace=traces.context_headers() if traces.on else None,
    )


def amqp_properties(req: Request) -> dict[str, Any]:
    """The properties of a request (pika's names): transient, expiring, replied to by
    direct reply-to; the sync client's one-write path marshals the same (frames.publish)."""
    return messages.properties(
        content_type=req.content_type,
        delivery_mode=messages.TRANSIENT,
        type=REQUEST_TYPE,
        expiration=req.expiration,
        correlation_id=req.correlation_id,
        reply_to=DIRECT_REPLY_TO,
        headers={frames.DEADLINE_HEADER: req.deadline, **(req.trace or {})},
    )


def aiormq_properties(req: Request) -> Basic.Properties:
    return messages.pamqp_properties(amqp_properties(req))


def no_route(name: str) -> NoRoute:
    return NoRoute(f"No queue serves RPC procedure {name!r} ({queue_name(name)} does not exist).")


def timed_out(
    name: str, timeout: float, consumers: int | None, blocked: bool = False
) -> RpcTimeout:
    """:class:`NoServer` when the queue is known to have no consumer, else :class:`RpcTimeout`
    (saying so when the broker ``blocked`` the connection for a resource alarm)."""
    message = f"No reply from RPC procedure {name!r} within {timeout:g}s"
    if blocked:
        return RpcTimeout(f"{message}: RabbitMQ blocks this connection (memory or disk alarm).")
    if consumers == 0:
        return NoServer(f"{message}: no server consumes {queue_name(name)}.")
    return RpcTimeout(f"{message}.")


def not_sent(name: str, why: BaseException | str) -> RpcNotSent:
    reason = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    return RpcNotSent(
        f"The call to {name!r} was not sent ({reason}); it did not run and may be retried."
    )


def connection_lost(name: str, exc: BaseException | None = None) -> BrokerConnectionError:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return BrokerConnectionError(
        f"Connection lost during the call to {name!r}{why}; it may or may not have run."
    )
