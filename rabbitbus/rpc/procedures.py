"""Procedures and errors as data: registration, the wire format, deadlines.

See :mod:`rabbitbus.rpc` for the wire format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rabbitbus import serializers, topology
from rabbitbus.conf.schema import is_int
from rabbitbus.exceptions import (
    ConfigurationError,
    DecodeError,
    RemoteError,
    RpcError,
)
from rabbitbus.messages import decode_body

logger = logging.getLogger("rabbitbus.rpc")

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=type[BaseException])

QUEUE_PREFIX = "rpc."
REQUEST_TYPE = "rpc.request"
REPLY_TYPE = "rpc.reply"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
DEFAULT_TIMEOUT = 10.0
#: Seconds past a request's deadline (by the server's clock) before a server refuses to
#: start it: the clock skew between callers and servers this tolerates (keep clocks in
#: sync, NTP does). A server whose clock runs up to this much ahead still serves calls
#: their callers wait for; with clocks in sync, no request starts later than this after
#: its caller gave up.
DEADLINE_GRACE = 1.0


@dataclass(frozen=True)
class Procedure:
    """A registered remote procedure; ``concurrency`` caps its requests running at once."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    concurrency: int | None = None

    @property
    def queue(self) -> str:
        return queue_name(self.name)

    def slots(self, server_concurrency: int) -> int:
        """How many requests may run at once: the server's ``--concurrency``, or fewer."""
        return min(server_concurrency, self.concurrency or server_concurrency)


_procedures: dict[str, Procedure] = {}
_safe_errors: dict[str, type[BaseException]] = {}


def queue_name(name: str) -> str:
    """The queue that serves procedure ``name``."""
    return QUEUE_PREFIX + name


def rpc_queue(name: str) -> topology.Queue:
    """The server queue of ``name``: classic, because requests carry a per-message TTL
    (``expiration``) and classic queues drop expired requests at the head reliably;
    durable, so that "queue there, server down" survives a broker restart."""
    return topology.Queue(queue_name(name), type="classic", durable=True)


def procedure(name: str, *, concurrency: int | None = None) -> Callable[[F], F]:
    """Register the decorated ``def`` or ``async def`` as remote procedure ``name``.

    ``concurrency`` caps how many of its requests a server runs at once, below
    the server's ``--concurrency`` (each procedure has its own queue, channel
    and slots, so a slow one capped low cannot take the CPU and threads its
    faster neighbours need). Its queue joins the topology registry, so
    ``rabbit_setup`` declares it. Raises :class:`ConfigurationError` if ``name`` is
    not a non-empty string (an empty one would be served from the bare queue ``rpc.``),
    another function already owns ``name`` or ``concurrency`` is not a positive int.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"RPC procedure name must be a non-empty string, not {name!r}.")
    if concurrency is not None and (not is_int(concurrency) or concurrency < 1):
        raise ConfigurationError(f"RPC procedure {name!r}: concurrency must be an int >= 1.")

    def decorate(func: F) -> F:
        existing = _procedures.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ConfigurationError(f"RPC procedure {name!r} is already registered.")
        is_async = asyncio.iscoroutinefunction(func)
        _procedures[name] = Procedure(name, func, is_async, concurrency)
        topology.registry.add(rpc_queue(name))
        return func

    return decorate


def registered() -> dict[str, Procedure]:
    """Every registered procedure by name."""
    return dict(_procedures)


def check_names(names: Sequence[str]) -> None:
    """Raise :class:`ConfigurationError` naming those of ``names`` that are not registered
    and the registered ones (what ``rabbit_rpc`` and ``rabbit_consume --rpc`` were given)."""
    unknown = sorted(set(names) - set(_procedures))
    if unknown:
        known = ", ".join(sorted(_procedures)) or "none"
        raise ConfigurationError(
            f"Unknown RPC procedure(s): {', '.join(unknown)}; registered: {known}."
        )


def error_type_name(cls: type[BaseException]) -> str:
    """The name an exception type travels under: ``module.Qualname`` (builtins bare)."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def register_error(cls: E) -> E:
    """Mark an exception type as safe to rebuild (``cls(message)``) on the caller's side.

    Usable as a class decorator. Register the same type in server and client.
    """
    _safe_errors[error_type_name(cls)] = cls
    return cls


# -- wire format (no I/O) --------------------------------------------------


def deadline_after(timeout: float) -> int:
    """The deadline of a request sent now with ``timeout``: epoch milliseconds."""
    return int((time.time() + timeout) * 1000)


def expired(deadline: int | None, now: float) -> bool:
    """Whether a request with ``deadline`` (epoch ms, ``None``: an older client sent no
    deadline) must not start at ``now`` (``time.time()``), :data:`DEADLINE_GRACE` allowed."""
    return deadline is not None and now > deadline / 1000 + DEADLINE_GRACE


def encode_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return serializers.default().dumps({"args": list(args), "kwargs": kwargs})


def decode_request(body: bytes, content_type: str | None) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a request body, or :class:`DecodeError`."""
    payload = decode_body(body, content_type)
    if not isinstance(payload, dict) or set(payload) - {"args", "kwargs"}:
        raise DecodeError("RPC request must be an object with only 'args' and 'kwargs'")
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise DecodeError("RPC 'args' must be a list and 'kwargs' an object")
    return args, kwargs


def ok_reply(result: Any) -> bytes:
    return serializers.default().dumps({"ok": True, "result": result})


def error_reply(exc: BaseException, code: str | None = None) -> bytes:
    """The reply for an exception: its type name, message and a code, as data."""
    raw_code = code or getattr(exc, "code", None)
    error = {
        "type": error_type_name(type(exc)),
        "message": str(exc),
        "code": raw_code if isinstance(raw_code, str) else "error",
    }
    return serializers.default().dumps({"ok": False, "error": error})


def result_from_reply(body: bytes, content_type: str | None) -> Any:
    """The result a reply carries; raises the rebuilt or :class:`RemoteError` error."""
    try:
        payload = decode_body(body, content_type)
        if payload["ok"]:
            return payload["result"]
        error = payload["error"]
        type_name, message, code = str(error["type"]), str(error["message"]), str(error["code"])
    except (DecodeError, KeyError, TypeError) as exc:
        raise RpcError(f"Malformed RPC reply ({exc})") from exc
    raise rebuild_error(type_name, message, code)


def rebuild_error(type_name: str, message: str, code: str) -> BaseException:
    cls = _safe_errors.get(type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - a constructor that wants more than a message
            logger.debug("Cannot rebuild %s from its message", type_name, exc_info=True)
    return RemoteError(type_name, message, code)
