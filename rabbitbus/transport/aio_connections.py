"""aio-pika connections by alias, one per event loop, and their publishing channels.

The async half of :mod:`rabbitbus.transport.connections` (which re-exports what callers use):
robust connections that move on to the next node of ``URLS`` when theirs is lost,
closed with the loop that opened them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import aio_pika
import aiormq.exceptions

from rabbitbus.conf import ConnectionSettings, settings
from rabbitbus.exceptions import BrokerConnectionError
from rabbitbus.transport import driver_logs, refusals
from rabbitbus.transport.endpoints import (
    CONNECT_ERRORS,
    backoff_delays,
    endpoint_order,
    refused_certificate,
    unavailable,
)
from rabbitbus.transport.opening import RobustConnection, open_robust

if TYPE_CHECKING:
    from rabbitbus.rpc.client import AsyncRpcClient

logger = logging.getLogger("rabbitbus.transport.connections")  # one logger name for both halves


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
    return connection.node if isinstance(connection, RobustConnection) else "?"


class AsyncConnection:
    """A robust aio-pika connection and its publishing channel, for one loop."""

    def __init__(self, cs: ConnectionSettings) -> None:
        self.settings = cs
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractRobustChannel | None = None
        self.closed = False
        #: The RPC client calling over this connection (made by rabbitbus.rpc.client).
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
        return isinstance(connection, RobustConnection) and connection.blocked

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

    async def _connect(self) -> RobustConnection:
        cs = self.settings
        deadline = time.monotonic() + cs.reconnect_timeout
        delays = backoff_delays()
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            for endpoint in endpoint_order(cs):
                # An attempt never outlasts the window: a silent peer holds it till its timeout.
                attempt = max(0.1, min(cs.connection_timeout, deadline - time.monotonic()))
                try:
                    connection = await open_robust(endpoint, cs, attempt)
                except (*CONNECT_ERRORS, aiormq.exceptions.InvalidFrameError) as exc:
                    if refused_certificate(exc) or refusals.describe(exc, endpoint):
                        raise unavailable(cs, exc) from exc
                    last_error = exc
                    continue
                log = _ConnectionLog(cs.alias)
                connection.close_callbacks.add(log.lost)
                connection.reconnect_callbacks.add(log.back)
                return connection
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
#: Loops run in many threads at once (async_to_sync under WSGI, workers beside web
#: threads): one thread adding its loop while another walks ``_loops`` raised
#: "dictionary changed size during iteration".
_loops_lock = threading.Lock()
#: Each loop's guard (see _closed_with_the_loop): asyncio tracks it only weakly.
_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None]] = (
    weakref.WeakKeyDictionary()
)


def get_async(alias: str = "default") -> AsyncConnection:
    """The running loop's connection for ``alias`` (connects on first use)."""
    loop = asyncio.get_running_loop()
    by_alias = _loops.get(loop)
    if by_alias is None:
        with _loops_lock:
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
                try:
                    await connection.close()
                except Exception:  # noqa: BLE001 - the others are closed all the same
                    alias = connection.settings.alias
                    logger.debug("Error while closing connection %r", alias, exc_info=True)

    started = guard()
    with contextlib.suppress(StopIteration):
        started.__anext__().send(None)  # runs to the yield; the loop now tracks it
    return started


def _forget_closed_loops() -> None:
    """Drop the connections of loops that are closed (called holding ``_loops_lock``).

    Their connections are gone already (``asyncio.run`` cancels their tasks),
    but each holds its loop, so the weak keys never die by themselves. Under
    WSGI every request to an async view runs in a one-off loop (Django's
    ``async_to_sync``): without this, each such request would leak one entry.
    """
    for loop in [loop for loop in _loops if loop.is_closed()]:
        del _loops[loop]
        _guards.pop(loop, None)


async def aclose_all() -> None:
    """Close this loop's connections (call before the loop ends); a failed close is
    logged at DEBUG, and the others are closed all the same.

    The loop's guard does the closing: a guard left to the garbage collector (replaced
    when something published on this loop again while we closed, as a worker's heartbeat
    did) would clear the same connections under our feet.
    """
    loop = asyncio.get_running_loop()
    with _loops_lock:
        _loops.pop(loop, None)
        guard = _guards.pop(loop, None)
    if guard is not None:
        await guard.aclose()  # runs its ``finally``


def forget_loops() -> None:
    """Forget every loop's connections (settings changed; tests)."""
    with _loops_lock:
        _loops.clear()
