"""Remote procedure calls over RabbitMQ: registration, the wire format, and the clients.

Register a procedure in an app's ``rabbit.py``::

    from rabbitbus import rpc

    @rpc.procedure("catalog.quote")
    def quote(sku: str, quantity: int = 1) -> dict: ...

serve it with ``manage.py rabbit_rpc`` and call it from a view with
:func:`call` (sync views) or :func:`acall` (async views).

Wire format (JSON, never pickle). A request goes through the default
exchange to the classic queue ``rpc.<name>`` with ``reply_to`` (direct
reply-to), a ``correlation_id``, ``type`` ``rpc.request``, ``expiration`` = the
caller's timeout (see :mod:`rabbitbus.rpc.client` for how a missing queue
is detected) and one header, :data:`rabbitbus.transport.frames.DEADLINE_HEADER`: the caller's wall
clock plus its timeout, in whole milliseconds since the epoch. A server
never starts a request more than :data:`DEADLINE_GRACE` seconds past that
deadline by its own clock (see :func:`expired`); a request without the
header (an older client) is served as before. Its body is ``{"args":
[...], "kwargs": {...}}``. The reply's body is ``{"ok": true, "result":
...}`` or ``{"ok": false, "error": {"type": ..., "message": ..., "code":
...}}``. Only exception types passed to
:func:`register_error` are rebuilt on the caller's side; anything else raises
:class:`~rabbitbus.exceptions.RemoteError`.

The package: :mod:`~rabbitbus.rpc.procedures` (registration, the wire format),
:mod:`~rabbitbus.rpc.client` (``call``/``acall`` and the per-connection clients, over
:mod:`~rabbitbus.rpc.sync_client` and :mod:`~rabbitbus.rpc.async_client`, which share
:mod:`~rabbitbus.rpc.requests`), and :mod:`~rabbitbus.rpc.server` (the worker's service).
"""

from __future__ import annotations

from rabbitbus.exceptions import NoRoute, NoServer, RemoteError, RpcError, RpcNotSent, RpcTimeout
from rabbitbus.rpc.client import acall, call
from rabbitbus.rpc.procedures import (
    DEADLINE_GRACE,
    DEFAULT_TIMEOUT,
    DIRECT_REPLY_TO,
    QUEUE_PREFIX,
    REPLY_TYPE,
    REQUEST_TYPE,
    Procedure,
    deadline_after,
    decode_request,
    encode_request,
    error_reply,
    error_type_name,
    expired,
    ok_reply,
    procedure,
    queue_name,
    rebuild_error,
    register_error,
    registered,
    result_from_reply,
    rpc_queue,
)

__all__ = [
    "DEADLINE_GRACE",
    "DEFAULT_TIMEOUT",
    "DIRECT_REPLY_TO",
    "QUEUE_PREFIX",
    "REPLY_TYPE",
    "REQUEST_TYPE",
    "NoRoute",
    "NoServer",
    "Procedure",
    "RemoteError",
    "RpcError",
    "RpcNotSent",
    "RpcTimeout",
    "acall",
    "call",
    "deadline_after",
    "decode_request",
    "encode_request",
    "error_reply",
    "error_type_name",
    "expired",
    "ok_reply",
    "procedure",
    "queue_name",
    "rebuild_error",
    "register_error",
    "registered",
    "result_from_reply",
    "rpc_queue",
]
