"""How every async connection of rabbitbus is opened: aio-pika's two connection classes,
from one URL and one set of arguments.

- :class:`RobustConnection` reconnects by itself, to the next node of ``URLS``: for code
  that publishes or calls from a request (``apublish``, ``acall``, live sockets), which
  cannot own a reconnect loop (:mod:`rabbitbus.transport.aio_connections` keeps one per
  alias and event loop).
- :class:`Connection` does not: for workers and RPC servers, whose runtime owns recovery
  (it opens a fresh connection and starts every consumer again) and must not have consumers
  restored behind its back (:mod:`rabbitbus.transport.aio`).

Both carry channels of aiormq, the driver under aio-pika, on which the hot paths run.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import ConnectionParameter
from aio_pika.connection import make_url
from aiormq.connection import TransportFactory

from rabbitbus.conf import ConnectionSettings, Endpoint
from rabbitbus.transport.endpoints import client_properties, endpoint_order, node, tls_options


def aio_pika_url(endpoint: Endpoint, cs: ConnectionSettings) -> str:
    parts = urlsplit(endpoint.url)
    query = urlencode({"heartbeat": cs.heartbeat, "name": client_properties(cs)["connection_name"]})
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


def _as_is(value: Any) -> Any:
    return value


#: What rabbitbus passes on to aiormq beyond aio-pika's own ``PARAMETERS`` (aio-pika keeps
#: only the keyword arguments those name): the name the broker's TLS certificate must bear,
#: and the socket opener of a delivery tap (:mod:`rabbitbus.transport.amqp_tap`).
_PARAMETERS = (
    ConnectionParameter(name="server_hostname", parser=str, is_kwarg=True),
    ConnectionParameter(name="transport_factory", parser=_as_is, is_kwarg=True),
)


class Connection(aio_pika.Connection):
    """aio-pika's plain connection, with :data:`_PARAMETERS`."""

    PARAMETERS = (*aio_pika.Connection.PARAMETERS, *_PARAMETERS)

    @property
    def transport_factory(self) -> TransportFactory | None:
        """The socket opener this connection was given, if any."""
        factory: TransportFactory | None = self.kwargs.get("transport_factory")
        return factory


class RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, with :data:`_PARAMETERS`, whose reconnect task ends
    when it is cancelled.

    aio-pika swallows a cancel that reaches its reconnect task during a
    reconnect attempt unless ``close()`` was called first, and tries again.
    ``asyncio.run`` (and so ``async_to_sync``) cancels every task when the main
    one ends and then waits for them all: a loop that ended while a reconnect
    attempt was under way (a broker that accepts TCP and stays silent) never
    finished. Only ``close()`` and a loop's end cancel that task, so a cancel
    here always means "closing": the attempt is abandoned at once.
    """

    PARAMETERS = (*aio_pika.RobustConnection.PARAMETERS, *_PARAMETERS)

    #: The nodes to reconnect to, the current one first (one, unless ``URLS`` lists several).
    failover_urls: tuple[Any, ...] = ()

    @property
    def node(self) -> str:
        """The node (``host:port``) this connection goes (or last went) to."""
        return node(self.url.host, self.url.port)

    def _next_node(self) -> None:
        """Reconnect to the next node of ``URLS`` (after a loss or a failed attempt)."""
        urls = self.failover_urls
        if len(urls) > 1:
            index = next((i for i, url in enumerate(urls) if url == self.url), -1)
            self.url = urls[(index + 1) % len(urls)]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # The close callbacks (our one WARNING naming the node lost) run first.
        await super()._on_connection_close(closing)
        if not self._close_called and not self.is_closed:
            self._next_node()

    async def _RobustConnection__connect_transport(self) -> None:  # noqa: N802 - aio-pika's
        # private reconnect step, overridden: a node that refuses passes the turn to the next.
        try:
            await _ROBUST_CONNECT_TRANSPORT(self)
        except Exception:
            self._next_node()
            raise

    @property  # type: ignore[override]
    def _close_called(self) -> bool:
        # aio-pika reads this flag in its reconnect task (the task's private name,
        # mangled as aio-pika's own class spells it) to decide whether a cancel ends it.
        task = asyncio.current_task()
        reconnecting: asyncio.Task[None] | None = getattr(
            self, "_RobustConnection__reconnection_task", None
        )
        if task is None or task is not reconnecting:
            return self._close_asked
        return self._close_asked or task.cancelling() > 0

    @_close_called.setter
    def _close_called(self, value: bool) -> None:
        self._close_asked = value

    @property
    def blocked(self) -> bool:
        """Whether the broker blocks this connection's publishers now (a resource alarm).

        aiormq tracks ``connection.blocked`` only in a private event, which its
        writer waits on; no public API tells.
        """
        transport = self.transport
        unblocked = transport and getattr(
            transport.connection, "_Connection__connection_unblocked", None
        )
        return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()


_ROBUST_CONNECT_TRANSPORT = aio_pika.RobustConnection._RobustConnection__connect_transport  # type: ignore[attr-defined]


async def open_robust(
    endpoint: Endpoint, cs: ConnectionSettings, timeout: float | None = None
) -> RobustConnection:
    """A connection to ``endpoint``, opened within ``timeout`` (default
    ``CONNECTION_TIMEOUT``), that once lost reconnects to the next node of
    :func:`endpoint_order` after ``endpoint``, and on through them while they fail."""
    connection = RobustConnection(
        _url(endpoint, cs), reconnect_interval=1, **_options(endpoint, cs)
    )
    order = endpoint_order(cs)
    start = order.index(endpoint) if endpoint in order else 0
    connection.failover_urls = tuple(_url(e, cs) for e in order[start:] + order[:start])
    return await _opened(connection, timeout or cs.connection_timeout)


async def open_plain(
    endpoint: Endpoint, cs: ConnectionSettings, *, transport_factory: TransportFactory | None
) -> Connection:
    """A connection to ``endpoint``, opened within ``CONNECTION_TIMEOUT``, its socket opened
    by ``transport_factory`` if given."""
    connection = Connection(
        _url(endpoint, cs), transport_factory=transport_factory, **_options(endpoint, cs)
    )
    return await _opened(connection, cs.connection_timeout)


def _url(endpoint: Endpoint, cs: ConnectionSettings) -> Any:
    return make_url(aio_pika_url(endpoint, cs))


def _options(endpoint: Endpoint, cs: ConnectionSettings) -> dict[str, Any]:
    return {
        "ssl_context": cs.ssl_context() if endpoint.tls else None,
        "client_properties": client_properties(cs),
        **tls_options(endpoint, cs),
    }


_Opened = TypeVar("_Opened", bound=aio_pika.Connection)


async def _opened(connection: _Opened, timeout: float) -> _Opened:
    """``connection``, connected; raises the driver's error when it cannot be in time."""
    try:
        await connection.connect(timeout=timeout)
    except BaseException:
        # Close it here: aio-pika's __del__ would leave an un-awaited close().
        await connection.close()
        raise
    return connection
