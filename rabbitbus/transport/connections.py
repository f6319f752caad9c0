"""Long-lived connections by alias: pika per thread, aio-pika per event loop.

The AMQP handshake costs at least seven TCP packets, so connections live long
and are never opened per message. pika connections are not thread-safe, so
each thread owns its own; aio-pika connections belong to the event loop that
opened them. A process that forks (gunicorn ``--preload``) starts afresh in
the child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
from pika.adapters.utils import connection_workflow

from rabbitbus.conf import ConnectionSettings, settings
from rabbitbus.transport import aio_connections, driver_logs, refusals
from rabbitbus.transport.aio_connections import AsyncConnection, aclose_all, get_async
from rabbitbus.transport.confirms import ConfirmChannel, PublicConfirmChannel
from rabbitbus.transport.endpoints import (
    CONNECT_ERRORS,
    backoff_delays,
    blocked,
    client_properties,
    endpoint_order,
    node,
    refused_certificate,
    tls_options,
    unavailable,
)
from rabbitbus.transport.outage import Outage

if TYPE_CHECKING:
    from rabbitbus.rpc.client import SyncRpcClient

__all__ = [
    "CONNECT_ERRORS",
    "PIKA_CONNECTION_ERRORS",
    "PROBE_AFTER",
    "AsyncConnection",
    "SyncConnection",
    "aclose_all",
    "backoff_delays",
    "blocked",
    "client_properties",
    "close_all",
    "endpoint_order",
    "failing_fast",
    "forget_all",
    "get_async",
    "get_sync",
    "node",
    "outage_of",
    "pika_node",
    "pika_parameters",
    "refused_certificate",
    "tls_options",
    "unavailable",
]

logger = logging.getLogger("rabbitbus.transport.connections")

#: pika errors that mean "this connection is gone; open another and retry".
PIKA_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    # A handshake that times out (a blackholed broker) raises this, not an AMQPConnectionError.
    connection_workflow.AMQPConnectorException,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    ConnectionError,
    OSError,
)


def blocked_too_long(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker blocked the connection for longer than
    ``BLOCKED_CONNECTION_TIMEOUT`` (a resource alarm), rather than that it was lost."""
    return isinstance(exc, pika.exceptions.ConnectionBlockedTimeout)


#: Idle seconds after which a connection is probed for a close before use (pika's poll);
#: one used more recently is trusted, and the sync RPC client trusts it only when nothing
#: waits on its socket either.
PROBE_AFTER = 1.0


def pika_parameters(
    cs: ConnectionSettings, timeout: float | None = None
) -> list[pika.ConnectionParameters]:
    """One ``ConnectionParameters`` per endpoint, in :func:`endpoint_order`; pika tries
    them in that order.

    ``timeout`` bounds each connect (default ``CONNECTION_TIMEOUT``).
    """
    context = cs.ssl_context()
    timeout = timeout or cs.connection_timeout
    return [
        pika.ConnectionParameters(
            host=endpoint.host,
            port=endpoint.port,
            virtual_host=endpoint.vhost,
            credentials=pika.PlainCredentials(endpoint.username, endpoint.password),
            heartbeat=cs.heartbeat,
            blocked_connection_timeout=cs.blocked_connection_timeout,
            socket_timeout=timeout,
            stack_timeout=timeout,
            connection_attempts=1,
            ssl_options=(
                pika.SSLOptions(context, cs.tls.get("SERVER_HOSTNAME") or endpoint.host)
                if endpoint.tls and context
                else None
            ),
            client_properties=client_properties(cs),
        )
        for endpoint in endpoint_order(cs)
    ]


class SyncConnection:
    """A pika ``BlockingConnection`` owned by one thread, reopened when dead.

    pika does no heartbeat work while a Django process sits idle between
    requests, so the broker drops idle connections. :meth:`get` notices
    (a connection idle past twice its heartbeat is presumed dead, even when a
    half-open socket hides the close) and reconnects before use.
    """

    def __init__(self, cs: ConnectionSettings) -> None:
        self.settings = cs
        self.connection: pika.BlockingConnection | None = None
        self.blocked = False
        self.reconnects = 0
        self.last_used = 0.0
        #: When the current connection opened (monotonic).
        self.opened_at = 0.0
        #: The node (``host:port``) the current or last connection went to.
        self.node = ""
        self._opened_once = False
        self._confirm_channel: ConfirmChannel | PublicConfirmChannel | None = None
        #: The RPC client calling over this connection (made by rabbitbus.rpc.client).
        self.rpc_client: SyncRpcClient | None = None
        driver_logs.install()  # pika's seven ERROR lines per failed connect become DEBUG

    def get(self, deadline: float | None = None, probe: bool = False) -> pika.BlockingConnection:
        """An open connection, connecting if needed; ``probe`` reads what the broker sent
        (a close, say) even when the connection was just used.

        While the broker is down, waits for the process's probe to see it back
        (see :mod:`rabbitbus.transport.outage`). Raises :class:`AccessRefused` at once for
        a refused login or virtual host, :class:`BrokerUnavailable` after
        ``RECONNECT_TIMEOUT`` seconds or by ``deadline`` (a ``time.monotonic()``
        value) if that comes first, or at once inside :func:`failing_fast`.
        """
        if self.connection is not None and self._looks_dead(probe):
            self.discard()
        if self.connection is None:
            self.connection = self._connect(deadline)
        self.last_used = time.monotonic()
        return self.connection

    def confirm_channel(self) -> ConfirmChannel | PublicConfirmChannel:
        """This connection's publishing channel, reopened after a broker close (pika's
        public API only while ``FAST_PATHS`` is off)."""
        connection = self.get()
        channel = self._confirm_channel
        if channel is None or not channel.is_open or channel.connection is not connection:
            kind = ConfirmChannel if settings.FAST_PATHS else PublicConfirmChannel
            channel = self._confirm_channel = kind(connection)
        return channel

    def drop_confirm_channel(self, channel: ConfirmChannel | PublicConfirmChannel | None) -> None:
        """Close ``channel`` (the publishing channel) after the broker nacked a publish on
        it; the next publish opens a fresh one.

        A channel opened on another node just after a node loss can go on nacking every
        publish to a quorum queue whose leader was on the lost node (seen on RabbitMQ
        3.10, tests/test_cluster.py); a new channel finds the new leader.
        """
        if channel is None:
            return
        if self._confirm_channel is channel:
            self._confirm_channel = None
        if channel.is_open:
            try:
                channel.close()
            except PIKA_CONNECTION_ERRORS:
                logger.debug("Error while closing a nacked channel", exc_info=True)

    def _looks_dead(self, probe: bool = False) -> bool:
        connection = self.connection
        if connection is None:
            return True
        idle = time.monotonic() - self.last_used
        if idle < PROBE_AFTER and not probe:
            # Just used: a close since then surfaces in the publish itself, which resends.
            return False
        if self.settings.heartbeat and idle > 2 * self.settings.heartbeat:
            logger.info("Reopening connection %r idle for %.0fs", self.settings.alias, idle)
            return True
        try:
            connection.process_data_events(0)  # reads a pending close or EOF
        except PIKA_CONNECTION_ERRORS as exc:
            self._report_lost(exc)  # the broker closed it, or the network did
            return True
        if not connection.is_open:
            self._report_lost(ConnectionError("closed while idle"))
            return True
        return False

    def _report_lost(self, error: BaseException) -> None:
        outage_of(self.settings).dropped(error, self.opened_at, self.node)

    def _connect(self, deadline: float | None = None) -> pika.BlockingConnection:
        cs = self.settings
        fast = _threads.fail_fast
        window = time.monotonic() + (0.0 if fast is not None else cs.reconnect_timeout)
        deadline = window if deadline is None else min(deadline, window)
        outage = outage_of(cs)
        while True:
            if not outage.wait_up(deadline):
                raise unavailable(cs, outage.error)
            try:
                connection = pika.BlockingConnection(pika_parameters(cs, fast))
            except PIKA_CONNECTION_ERRORS as exc:
                if refused_certificate(exc) or refusals.describe(exc, cs.endpoints[0]):
                    raise unavailable(cs, exc) from exc
                outage.connect_failed(exc)
                continue
            self._on_open(connection)
            outage.back(self.node)
            return connection

    def _on_open(self, connection: pika.BlockingConnection) -> None:
        if self._opened_once:
            self.reconnects += 1
        self._opened_once = True
        self.opened_at = time.monotonic()
        self.node = pika_node(connection)
        self.blocked = False
        # Registered on the impl so they run during I/O, not only in process_data_events.
        connection._impl.add_on_connection_blocked_callback(self._set_blocked)
        connection._impl.add_on_connection_unblocked_callback(self._set_unblocked)

    def _set_blocked(self, *_: Any) -> None:
        logger.warning("Broker blocked connection %r (resource alarm)", self.settings.alias)
        self.blocked = True

    def _set_unblocked(self, *_: Any) -> None:
        logger.info("Broker unblocked connection %r", self.settings.alias)
        self.blocked = False

    def discard(self, error: BaseException | None = None) -> None:
        """Drop the connection without a close handshake (it may be dead or blocked).

        ``error`` (by default the exception being handled, when called from an
        ``except`` block for a connection error) is reported as a lost connection.
        """
        error = error or sys.exc_info()[1]
        if isinstance(error, PIKA_CONNECTION_ERRORS) and self.connection is not None:
            self._report_lost(error)
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed:
            try:
                connection._impl._adapter_disconnect_stream()
            except Exception:  # noqa: BLE001 - best effort on a dead socket
                logger.debug("Error while dropping connection", exc_info=True)

    def close(self) -> None:
        """Close politely; used at shutdown."""
        connection, self.connection = self.connection, None
        channel, self._confirm_channel = self._confirm_channel, None
        if connection is not None and connection.is_open and not self.blocked:
            try:
                if channel is not None and channel.connection is connection:
                    channel.close()
                connection.close()
            except PIKA_CONNECTION_ERRORS:
                logger.debug("Error while closing connection", exc_info=True)


class _ThreadConnections(threading.local):
    def __init__(self) -> None:
        self.by_alias: dict[str, SyncConnection] = {}
        self.owner = (os.getpid(), _generation)
        #: Inside failing_fast(): the connect timeout, and no waiting for a down broker.
        self.fail_fast: float | None = None


_generation = 0
_threads = _ThreadConnections()


@contextlib.contextmanager
def failing_fast(connect_timeout: float) -> Iterator[None]:
    """Within the block, this thread's sync connects wait for no outage.

    A broker known to be down raises :class:`BrokerUnavailable` at once; otherwise
    one connect is tried, for at most ``connect_timeout`` seconds. For callers
    with a fallback (on-commit publishing falls back to the outbox).
    """
    previous, _threads.fail_fast = _threads.fail_fast, connect_timeout
    try:
        yield
    finally:
        _threads.fail_fast = previous


_outages: dict[str, Outage] = {}
_outages_owner = (0, -1)
_outages_lock = threading.Lock()


def outage_of(cs: ConnectionSettings) -> Outage:
    """This process's :class:`Outage` for the alias of ``cs`` (shared by its threads)."""
    global _outages_owner
    with _outages_lock:
        if _outages_owner != (os.getpid(), _generation):
            # Forked (the parent's probe thread is not ours) or settings changed.
            for stale in _outages.values():
                stale.stop()
            _outages.clear()
            _outages_owner = (os.getpid(), _generation)
        outage = _outages.get(cs.alias)
        if outage is None:
            outage = _outages[cs.alias] = Outage(cs.alias, lambda: _probe(cs))
        return outage


def _probe(cs: ConnectionSettings) -> str:
    """Open and close one connection (raises the driver's error if it cannot); returns
    the node it reached."""
    connection = pika.BlockingConnection(pika_parameters(cs))
    reached = pika_node(connection)
    connection.close()
    return reached


def pika_node(connection: pika.BlockingConnection) -> str:
    """The node (``host:port``) a pika connection went to (pika tries a list in order)."""
    params = connection._impl.params
    return node(params.host, params.port)


def broker_version(alias: str = "default") -> str:
    """The broker's version, as it announced it when the connection opened."""
    properties = get_sync(alias).get()._impl.server_properties or {}
    version = properties.get("version", b"")
    return version.decode() if isinstance(version, bytes) else str(version)


def get_sync(alias: str = "default") -> SyncConnection:
    """This thread's connection for ``alias`` (created lazily, never shared)."""
    if _threads.owner != (os.getpid(), _generation):
        # Forked (the parent's sockets are not ours) or settings changed.
        _threads.by_alias, _threads.owner = {}, (os.getpid(), _generation)
    connection = _threads.by_alias.get(alias)
    if connection is None:
        connection = SyncConnection(settings.connection(alias))
        _threads.by_alias[alias] = connection
    return connection


def close_all() -> None:
    """Close this thread's sync connections."""
    for connection in list(_threads.by_alias.values()):
        connection.close()
    _threads.by_alias.clear()


def forget_all() -> None:
    """Make every thread open fresh connections (settings changed; tests)."""
    global _generation
    _generation += 1
    aio_connections.forget_loops()
