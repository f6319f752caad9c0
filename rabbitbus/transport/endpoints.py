"""Which broker node to connect to, and how: the node order of ``URLS``, client
properties, TLS options, backoff, and the errors a connection that cannot open raises.

Shared by the sync (pika, :mod:`rabbitbus.transport.connections`) and async (aio-pika,
:mod:`rabbitbus.transport.aio_connections`) connections.
"""

from __future__ import annotations

import hashlib
import os
import random
import ssl
from typing import Any

from rabbitbus.conf import ConnectionSettings, Endpoint
from rabbitbus.exceptions import AccessRefused, BrokerBlocked, BrokerUnavailable
from rabbitbus.transport import refusals
from rabbitbus.transport.outage import why

#: asyncio connect errors after which another attempt may succeed.
CONNECT_ERRORS = (TimeoutError, ConnectionError, OSError)

#: Idle seconds after which a connection is probed for a close before use.


def backoff_delays(base: float = 0.05, cap: float = 1.0) -> Any:
    """Capped exponential backoff with full jitter: base, 2*base, ... <= cap."""
    delay = base
    while True:
        yield random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
        delay = min(cap, delay * 2)


_order_seed: tuple[int, int] = (0, 0)


def endpoint_order(cs: ConnectionSettings) -> tuple[Endpoint, ...]:
    """``cs.endpoints`` (``URLS``) in this process's order, the order every connection of
    the process (publishers, RPC, workers, relay, live sockets) tries them in.

    The order is a shuffle seeded once per process (again after a fork), so the
    processes of a deployment spread over a cluster's nodes, while the connections
    of one process prefer the same node.
    """
    global _order_seed
    if len(cs.endpoints) < 2:
        return cs.endpoints
    if _order_seed[0] != os.getpid():
        _order_seed = (os.getpid(), random.SystemRandom().getrandbits(64))
    seed = _order_seed[1]

    def rank(endpoint: Endpoint) -> bytes:
        return hashlib.sha256(f"{seed}:{endpoint.host}:{endpoint.port}".encode()).digest()

    return tuple(sorted(cs.endpoints, key=rank))


def node(host: str | None, port: int | None) -> str:
    """How logs name a broker node: ``host:port``."""
    return f"{host}:{port}"


def client_properties(cs: ConnectionSettings) -> dict[str, Any]:
    name = cs.connection_name or f"rabbitbus {os.getpid()}"
    return {"connection_name": name, "product": "rabbitbus"}


def unavailable(cs: ConnectionSettings, exc: BaseException | None = None) -> BrokerUnavailable:
    """The error for a broker that did not let us in: refused, untrusted, or unreachable."""
    where = ", ".join(str(endpoint) for endpoint in cs.endpoints)
    refusal = refusals.describe(exc, cs.endpoints[0])
    if refusal is not None:
        return AccessRefused(f"{refusal}: connection {cs.alias!r} to {where}.")
    certificate = refused_certificate(exc)
    if certificate is not None:
        return BrokerUnavailable(
            f"RabbitMQ at {where} failed TLS verification for connection {cs.alias!r} "
            f"({certificate}). Check TLS CA_FILE (the CA that signed the broker's "
            "certificate) and SERVER_HOSTNAME (when the certificate names the broker "
            "otherwise than the URL does)."
        )
    reason = f" ({why(exc)})" if exc is not None else ""
    return BrokerUnavailable(
        f"RabbitMQ is not reachable at {where} for connection {cs.alias!r}{reason}. "
        "Is the server running?"
    )


def refused_certificate(exc: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The broker certificate the client refused behind ``exc``, if that is why a connect
    failed: a setting to fix, not an outage to wait out."""
    for error in refusals.chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
    return None


def tls_options(endpoint: Endpoint, cs: ConnectionSettings) -> dict[str, Any]:
    """Extra connect arguments for asyncio: the name the broker's certificate must bear."""
    hostname = cs.tls.get("SERVER_HOSTNAME")
    return {"server_hostname": hostname} if endpoint.tls and hostname else {}


def blocked(cs: ConnectionSettings) -> BrokerBlocked:
    return BrokerBlocked(
        f"RabbitMQ blocked publishing on connection {cs.alias!r} (memory or disk alarm)."
    )
