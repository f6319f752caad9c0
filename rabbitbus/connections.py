"""Long-lived connections by alias: pika per thread, aio-pika per event loop.

The AMQP handshake costs at least seven TCP packets, so connections live long
and are never opened per message. pika connections are not thread-safe, so
each thread owns its own; aio-pika connections belong to the event loop that
opened them. A process that forks (gunicorn ``--preload``) starts afresh in
the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import ssl
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aio_pika
import aiormq.exceptions
import pika
import pika.exceptions
from aio_pika.abc import ConnectionParameter
from aio_pika.connection import make_url
from pika.adapters.utils import connection_workflow

from rabbitbus import driver_logs, refusals
from rabbitbus.conf import ConnectionSettings, Endpoint, settings
from rabbitbus.confirms import ConfirmChannel
from rabbitbus.exceptions import (
    AccessRefused,
    BrokerBlocked,
    BrokerConnectionError,
    BrokerUnavailable,
)
from rabbitbus.outage import Outage, why

if TYPE_CHECKING:
    from rabbitbus.rpc_client import AsyncRpcClient, SyncRpcClient

logger = logging.getLogger("rabbitbus.connections")

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


#: asyncio connect errors after which another attempt may succeed.
CONNECT_ERRORS = (TimeoutError, ConnectionError, OSError)

#: Idle seconds after which a connection is probed for a close before use.
PROBE_AFTER = 1.0


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
        self._confirm_channel: ConfirmChannel | None = None
        #: The RPC client calling over this connection (made by rabbitbus.rpc_client).
        self.rpc_client: SyncRpcClient | None = None
        driver_logs.install()  # pika's seven ERROR lines per failed connect become DEBUG

    def get(self, deadline: float | None = None) -> pika.BlockingConnection:
        """An open connection, connecting if needed.

        While the broker is down, waits for the process's probe to see it back
        (see :mod:`rabbitbus.outage`). Raises :class:`AccessRefused` at once for
        a refused login or virtual host, :class:`BrokerUnavailable` after
        ``RECONNECT_TIMEOUT`` seconds or by ``deadline`` (a ``time.monotonic()``
        value) if that comes first, or at once inside :func:`failing_fast`.
        """
        if self.connection is not None and self._looks_dead():
            self.discard()
        if self.connection is None:
            self.connection = self._connect(deadline)
        self.last_used = time.monotonic()
        return self.connection

    def confirm_channel(self) -> ConfirmChannel:
        """This connection's publishing channel, reopened after a broker close."""
        connection = self.get()
        channel = self._confirm_channel
        if channel is None or not channel.is_open or channel.connection is not connection:
            channel = self._confirm_channel = ConfirmChannel(connection)
        return channel

    def drop_confirm_channel(self, channel: ConfirmChannel | None) -> None:
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

    def _looks_dead(self) -> bool:
        connection = self.connection
        if connection is None:
            return True
        idle = time.monotonic() - self.last_used
        if idle < PROBE_AFTER:
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
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def tls_options(endpoint: Endpoint, cs: ConnectionSettings) -> dict[str, Any]:
    """Extra connect arguments for asyncio: the name the broker's certificate must bear."""
    hostname = cs.tls.get("SERVER_HOSTNAME")
    return {"server_hostname": hostname} if endpoint.tls and hostname else {}


def blocked(cs: ConnectionSettings) -> BrokerBlocked:
    return BrokerBlocked(
        f"RabbitMQ blocked publishing on connection {cs.alias!r} (memory or disk alarm)."
    )


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


# -- asyncio ---------------------------------------------------------------


def aio_pika_url(endpoint: Endpoint, cs: ConnectionSettings) -> str:
    parts = urlsplit(endpoint.url)
    query = urlencode({"heartbeat": cs.heartbeat, "name": client_properties(cs)["connection_name"]})
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


async def _connect_robust(
    endpoint: Endpoint, cs: ConnectionSettings, timeout: float | None = None
) -> aio_pika.abc.AbstractRobustConnection:
    """A connected robust connection to ``endpoint``; the attempt lasts at most ``timeout``
    (default ``CONNECTION_TIMEOUT``). Once lost, it reconnects to the next node of
    :func:`endpoint_order` after ``endpoint``, and on through them while they fail."""
    order = endpoint_order(cs)
    start = order.index(endpoint) if endpoint in order else 0
    urls = [make_url(aio_pika_url(e, cs)) for e in order[start:] + order[:start]]
    connection = _RobustConnection(
        urls[0],
        ssl_context=cs.ssl_context() if endpoint.tls else None,
        client_properties=client_properties(cs),
        reconnect_interval=1,
        **tls_options(endpoint, cs),
    )
    connection.failover_urls = tuple(urls)
    try:
        await connection.connect(timeout=timeout or cs.connection_timeout)
    except BaseException:
        # Close it here: aio-pika's __del__ would leave an un-awaited close().
        await connection.close()
        raise
    log = _ConnectionLog(cs.alias)
    connection.close_callbacks.add(log.lost)
    connection.reconnect_callbacks.add(log.back)
    return connection


class _RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, passing TLS ``server_hostname`` on to aiormq
    (aio-pika keeps only the keyword arguments its ``PARAMETERS`` name), whose
    reconnect task ends when it is cancelled.

    aio-pika swallows a cancel that reaches its reconnect task during a
    reconnect attempt unless ``close()`` was called first, and tries again.
    ``asyncio.run`` (and so ``async_to_sync``) cancels every task when the main
    one ends and then waits for them all: a loop that ended while a reconnect
    attempt was under way (a broker that accepts TCP and stays silent) never
    finished. Only ``close()`` and a loop's end cancel that task, so a cancel
    here always means "closing": the attempt is abandoned at once.
    """

    PARAMETERS = (
        *aio_pika.RobustConnection.PARAMETERS,
        ConnectionParameter(name="server_hostname", parser=str, is_kwarg=True),
    )

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


class _ConnectionLog:
    """One WARNING when a robust connection is lost, one INFO when it is back.

    aio-pika calls close callbacks again for each failed reconnect attempt, and
    a close we asked for passes no error (or a cancel): neither is a new loss.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.up = True

    def lost(self, connection: object, error: BaseException | None = None) -> None:
        if not self.up or error is None or isinstance(error, asyncio.CancelledError):
            return
        self.up = False
        # A socket failure reaches us wrapped in an AMQPConnectionError: name the socket's.
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
        logger.warning(
            "Connection %r lost (%s: %s) on node %s; reconnecting",
            self.alias, type(cause).__name__, cause, _node_of(connection),
        )  # fmt: skip

    def back(self, connection: object) -> None:
        self.up = True
        logger.info("Connection %r re-established on node %s", self.alias, _node_of(connection))


def _node_of(connection: object) -> str:
    return connection.node if isinstance(connection, _RobustConnection) else "?"


class AsyncConnection:
    """A robust aio-pika connection and its publishing channel, for one loop."""

    def __init__(self, cs: ConnectionSettings) -> None:
        self.settings = cs
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractRobustChannel | None = None
        self.closed = False
        #: The RPC client calling over this connection (made by rabbitbus.rpc_client).
        self.rpc_client: AsyncRpcClient | None = None
        self._lock = asyncio.Lock()
        driver_logs.install()  # a lost connection is our one line, not aiormq's traceback

    async def get(self) -> aio_pika.abc.AbstractRobustConnection:
        """The open robust connection; raises :class:`BrokerUnavailable`, or
        :class:`BrokerConnectionError` once :meth:`close` was called."""
        if self.connection is None:
            async with self._lock:
                if self.connection is None:
                    connection = await self._connect()
                    if self.closed:
                        # Closed (shutdown) while we connected: nobody would close this one.
                        await connection.close()
                        raise BrokerConnectionError(
                            f"Connection {self.settings.alias!r} was closed while connecting."
                        )
                    self.connection = connection
        return self.connection

    async def publish_channel(self) -> aio_pika.abc.AbstractRobustChannel:
        """A confirm channel whose returned messages raise."""
        if self.channel is None:
            connection = await self.get()
            async with self._lock:
                if self.channel is None:
                    try:
                        # Bounded: we hold the lock, and a channel opened while the robust
                        # connection recovers can wait on it for ever.
                        async with asyncio.timeout(self.settings.connection_timeout):
                            self.channel = await connection.channel(
                                publisher_confirms=True, on_return_raises=True
                            )
                    except RuntimeError as exc:  # aiormq: "<Connection ...> closed"
                        raise BrokerConnectionError(
                            f"Connection {self.settings.alias!r} closed while its publishing "
                            "channel opened."
                        ) from exc
                    except TimeoutError as exc:
                        raise unavailable(self.settings, exc) from exc
        return self.channel

    async def drop_publish_channel(self, channel: aio_pika.abc.AbstractChannel) -> None:
        """Close ``channel`` (the publishing channel) after the broker nacked a publish on
        it; the next publish opens a fresh one.

        A channel aio-pika restored on another node after a node loss can go on nacking
        every publish to a quorum queue whose leader was on the lost node (seen on
        RabbitMQ 3.10, tests/test_cluster.py); a new channel finds the new leader.
        """
        if self.channel is channel:
            self.channel = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.connection_timeout):
                await channel.close()

    @property
    def ready(self) -> bool:
        """False while the robust connection is lost and reconnecting."""
        connection = self.connection
        return connection is None or connection.connected.is_set()

    @property
    def blocked(self) -> bool:
        """Whether the broker blocks publishing on this connection (memory or disk alarm)."""
        connection = self.connection
        return isinstance(connection, _RobustConnection) and connection.blocked

    async def wait_ready(self, deadline: float) -> None:
        """Wait until the lost connection is back, at the latest until ``deadline``
        (``loop.time()``); raises :class:`BrokerUnavailable` then."""
        connection = self.connection
        if connection is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await connection.ready()
        except TimeoutError as exc:
            raise unavailable(self.settings, exc) from exc

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        cs = self.settings
        deadline = time.monotonic() + cs.reconnect_timeout
        delays = backoff_delays()
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            for endpoint in endpoint_order(cs):
                # An attempt never outlasts the window: a silent peer holds it till its timeout.
                attempt = max(0.1, min(cs.connection_timeout, deadline - time.monotonic()))
                try:
                    return await _connect_robust(endpoint, cs, attempt)
                except (*CONNECT_ERRORS, aiormq.exceptions.InvalidFrameError) as exc:
                    if refused_certificate(exc) or refusals.describe(exc, endpoint):
                        raise unavailable(cs, exc) from exc
                    last_error = exc
            logger.warning(
                "Broker %r unreachable (%s); retrying", cs.alias, type(last_error).__name__
            )
            await asyncio.sleep(next(delays))
        raise unavailable(cs, last_error) from last_error

    async def close(self) -> None:
        """Close for good: a connect still in progress is closed when it completes."""
        self.closed = True
        connection, self.connection, self.channel = self.connection, None, None
        if connection is None:
            return
        try:
            # aio-pika's close waits for its reconnect task, which a connection cut
            # mid-recovery can leave waiting for ever: a shutdown must not hang on it.
            async with asyncio.timeout(self.settings.connection_timeout):
                await connection.close()
        except TimeoutError:
            logger.warning(
                "Connection %r did not close within %.0f s; abandoned",
                self.settings.alias,
                self.settings.connection_timeout,
            )


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncConnection]] = (
    weakref.WeakKeyDictionary()
)
#: Each loop's guard (see _closed_with_the_loop): asyncio tracks it only weakly.
_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None]] = (
    weakref.WeakKeyDictionary()
)


def get_async(alias: str = "default") -> AsyncConnection:
    """The running loop's connection for ``alias`` (connects on first use)."""
    loop = asyncio.get_running_loop()
    by_alias = _loops.get(loop)
    if by_alias is None:
        _forget_closed_loops()
        by_alias = _loops[loop] = {}
        _guards[loop] = _closed_with_the_loop(by_alias)
    connection = by_alias.get(alias)
    if connection is None:
        connection = by_alias[alias] = AsyncConnection(settings.connection(alias))
    return connection


def _closed_with_the_loop(by_alias: dict[str, AsyncConnection]) -> AsyncGenerator[None]:
    """An async generator, started now, whose ``finally`` closes ``by_alias``.

    ``asyncio.run`` (and so Django's ``async_to_sync``, pytest-asyncio and
    ``Runner``) finalises every async generator of a loop before closing it:
    this one closes the loop's connections cleanly then, instead of leaving
    aio-pika's callbacks to die with the loop ("Event loop is closed").
    """

    async def guard() -> AsyncGenerator[None]:
        try:
            yield
        finally:
            open_now = list(by_alias.values())
            by_alias.clear()
            for connection in open_now:
                with contextlib.suppress(Exception):
                    await connection.close()

    started = guard()
    with contextlib.suppress(StopIteration):
        started.__anext__().send(None)  # runs to the yield; the loop now tracks it
    return started


def _forget_closed_loops() -> None:
    """Drop the connections of loops that are closed.

    Their connections are gone already (``asyncio.run`` cancels their tasks),
    but each holds its loop, so the weak keys never die by themselves. Under
    WSGI every request to an async view runs in a one-off loop (Django's
    ``async_to_sync``): without this, each such request would leak one entry.
    """
    for loop in [loop for loop in _loops if loop.is_closed()]:
        del _loops[loop]
        _guards.pop(loop, None)


async def aclose_all() -> None:
    """Close this loop's connections (call before the loop ends)."""
    by_alias = _loops.pop(asyncio.get_running_loop(), {})
    for connection in by_alias.values():
        await connection.close()


def close_all() -> None:
    """Close this thread's sync connections."""
    for connection in list(_threads.by_alias.values()):
        connection.close()
    _threads.by_alias.clear()


def forget_all() -> None:
    """Make every thread open fresh connections (settings changed; tests)."""
    global _generation
    _generation += 1
    _loops.clear()
