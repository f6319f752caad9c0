"""The asyncio runtime behind long-running rabbitbus processes.

A :class:`Runtime` owns one AMQP connection for consuming (publishing goes
through :mod:`rabbitbus.transport.connections`, a separate connection, as RabbitMQ
recommends), keeps it alive and runs :class:`Service` objects on it:

* after every (re)connect it calls ``await service.start(connection)``:
  declare what you need, open your channels and start consuming;
* on SIGTERM/SIGINT it calls ``await service.stop()`` (stop taking new work:
  cancel consumers), then ``await service.drain()`` bounded by the grace
  period (finish and settle in-flight work), then closes the connection.

Reconnects use capped exponential backoff with jitter: one WARNING when the
connection is lost (or the first connect fails), one INFO line per attempt,
one INFO when it is back; the runtime never exits because the broker is down. aiormq is used
directly rather than aio-pika's robust connection, which can come back with
zero consumers: here consumers are re-registered explicitly and verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Protocol

from rabbitbus.conf import ConnectionSettings, Endpoint, settings
from rabbitbus.exceptions import QueueNodeDown, TopologyError
from rabbitbus.observability import metrics
from rabbitbus.transport import aio, connections, driver_logs, refusals
from rabbitbus.transport.aio import RECOVERABLE

logger = logging.getLogger("rabbitbus.runtime.service")


class Service(Protocol):
    """Something that consumes on the runtime's connection and drains on shutdown."""

    name: str

    async def start(self, connection: aio.Connection) -> None:
        """Declare, open channels and consume; called after every (re)connect."""

    async def stop(self) -> None:
        """Stop taking new work (cancel consumers); in-flight work goes on."""

    async def drain(self) -> None:
        """Return once in-flight work is finished and settled."""

    def stats(self) -> dict[str, Any]:
        """Counters for heartbeats: at least processed, failed, retried."""


class Runtime:
    """Runs services on one kept-alive connection until a signal stops it."""

    def __init__(self, services: Sequence[Service], *, alias: str = "default") -> None:
        self.services = list(services)
        self.connection_settings: ConnectionSettings = settings.connection(alias)
        worker = settings.worker
        self.grace = float(worker.grace_period)
        self.reconnect_cap = float(worker.reconnect_max_delay)
        self.stopping = asyncio.Event()
        self.ready = False
        self.connection: aio.Connection | None = None
        self.reconnects = 0
        #: Index in connections.endpoint_order() of the node to try next (or connected to).
        self._node_index = 0
        #: The node (``host:port``) of the current or last connection.
        self.node = ""
        #: Called with each connection once every service started on it (the worker's banner).
        self.on_connected: list[Callable[[aio.Connection], None]] = []
        self._signals = 0
        #: When the connection was lost (or a connect first failed); None while connected.
        self._lost_at: float | None = None
        self._node_down_delays: Iterator[float]
        self._start_delays: Iterator[float]
        self._start_failed: bool
        self._reset_start_backoff()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Serve until stopped; then drain within the grace period and close.

        ``handle_signals=False`` leaves SIGTERM/SIGINT alone (a runtime in a
        thread, as in tests); call :meth:`stop` from the loop instead.
        """
        if handle_signals:
            self._install_signal_handlers()
        driver_logs.install()  # one line per lost connection, not a traceback
        while not self.stopping.is_set():
            if await self._serve_once():
                self.reconnects += 1
        await self._shutdown()

    def stop(self) -> None:
        """Ask the runtime to shut down gracefully (what the first signal does)."""
        self.stopping.set()

    async def _serve_once(self) -> bool:
        connection = await self._connect()
        if connection is None:
            return False
        try:
            for service in self.services:
                await service.start(connection)
        except QueueNodeDown as exc:
            # A cluster node holding one of our classic queues is down: wait for it, as
            # for a broker outage, rather than exit.
            delay = next(self._node_down_delays)
            logger.warning("%s; retrying in %.1fs", exc, delay)
            await aio.close(connection)
            await _sleep_unless(self.stopping, delay)
            return True
        except TopologyError:
            await aio.close(connection)
            raise
        except RECOVERABLE as exc:
            # Backed off: a broker that takes the connection and fails every consume (a
            # quorum queue electing its leader answers INTERNAL_ERROR) must not spin.
            # One WARNING, then one INFO per try, until the services start.
            delay = next(self._start_delays)
            level = logging.INFO if self._start_failed else logging.WARNING
            self._start_failed = True
            logger.log(
                level, "Could not start consuming (%s: %s); reconnecting in %.1fs",
                type(exc).__name__, exc, delay,
            )  # fmt: skip
            await aio.close(connection)
            await _sleep_unless(self.stopping, delay)
            return True
        self.ready = True
        self._reset_start_backoff()
        node = self._endpoint().node
        if metrics.on:
            metrics.connection_changed(self.connection_settings.alias, node, up=True)
        for callback in self.on_connected:
            callback(connection)
        await self._wait_closed_or_stopped(connection)
        self.ready = False
        if metrics.on:
            metrics.connection_changed(self.connection_settings.alias, node, up=False)
        return not self.stopping.is_set()

    def _reset_start_backoff(self) -> None:
        """Fresh waits between tries while a queue's home node is down, and while the services
        fail to start on a fresh connection (at start, and again once serving)."""
        self._node_down_delays = connections.backoff_delays(base=1.0, cap=self.reconnect_cap)
        self._start_delays = connections.backoff_delays(base=0.5, cap=self.reconnect_cap)
        self._start_failed = False

    async def _wait_closed_or_stopped(self, connection: aio.Connection) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        closing = asyncio.ensure_future(aio.closed(connection))
        await asyncio.wait([stop, closing], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if closing.done() and not self.stopping.is_set():
            self._lost_at = time.monotonic()
            # The next node first (the lost one is tried last: it may be back by then).
            self._node_index += 1
            logger.warning(
                "Connection lost (%s) on node %s; reconnecting", closing.result(), self.node
            )
            await aio.close(connection)  # what is left of it: aio-pika's side
        else:
            closing.cancel()

    async def _connect(self) -> aio.Connection | None:
        delays = connections.backoff_delays(base=0.5, cap=self.reconnect_cap)
        attempt = 0
        while not self.stopping.is_set():
            attempt += 1
            try:
                self.connection = await self._open()
            except RECOVERABLE as exc:
                delay = next(delays)
                # One WARNING per outage (or this one): the retries after it are INFO.
                level = logging.WARNING if self._lost_at is None else logging.INFO
                self._lost_at = self._lost_at or time.monotonic()
                logger.log(
                    level, "Broker unreachable (attempt %d: %s); retrying in %.1fs",
                    attempt, self._why(exc), delay,
                )  # fmt: skip
                await _sleep_unless(self.stopping, delay)
                continue
            self._log_back()
            return self.connection
        return None

    def _log_back(self) -> None:
        if self._lost_at is not None:
            since, self._lost_at = self._lost_at, None
            logger.info(
                "Connection re-established after %.1fs on node %s",
                time.monotonic() - since, self.node,
            )  # fmt: skip

    def _why(self, exc: BaseException) -> str:
        """What RabbitMQ said if it refused us (it may be fixed while we retry), else the type."""
        return refusals.describe(exc, self._endpoint()) or type(exc).__name__

    def _endpoint(self) -> Endpoint:
        """The endpoint to try next, in the process's order of ``URLS``
        (:func:`connections.endpoint_order`)."""
        endpoints = connections.endpoint_order(self.connection_settings)
        return endpoints[self._node_index % len(endpoints)]

    async def _open(self) -> aio.Connection:
        """A connection to the first node that takes it, from the last one that did (the
        one after it when it was lost) on through the others; raises the last one's error."""
        count = len(self.connection_settings.endpoints)
        for attempt in range(count):
            try:
                connection = await self._open_endpoint(self._endpoint())
            except RECOVERABLE:
                if attempt == count - 1:
                    raise
                self._node_index += 1
                continue
            endpoint = self._endpoint()
            self.node = connections.node(endpoint.host, endpoint.port)
            return connection
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open_endpoint(self, endpoint: Endpoint) -> aio.Connection:
        tapped = any(getattr(service, "uses_tap", False) for service in self.services)
        return await aio.connect(endpoint, self.connection_settings, tapped=tapped)

    async def _shutdown(self) -> None:
        for service in self.services:
            await service.stop()
        try:
            await asyncio.wait_for(asyncio.gather(*(s.drain() for s in self.services)), self.grace)
        except TimeoutError:
            logger.warning(
                "Grace period of %.0fs over; unfinished messages will be redelivered", self.grace
            )
        if self.connection is not None:
            await aio.close(self.connection)
        await connections.aclose_all()

    def _install_signal_handlers(self) -> None:
        global _signalled  # noqa: PLW0603 - one process, one shutdown
        _signalled = False
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
            # The loop still hears of the signal through its wakeup socket; this Python-level
            # handler (in place of the loop's no-op) notes it at once, even while a handler
            # runs in the loop's own thread (inline=True) and the loop cannot listen.
            signal.signal(signum, _note_signal)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            # Unacked messages are requeued by the broker when the socket closes. The status
            # is the shell's for death by that signal (143 for SIGTERM, 130 for SIGINT): a
            # forced stop, told apart from a crash (1) and from a graceful one (0).
            logger.warning("Second signal: exiting now")
            os._exit(128 + signum)
        logger.info("Received %s: finishing in-flight messages", signal.Signals(signum).name)
        self.stop()


#: Whether SIGTERM or SIGINT has reached this process's runtime: see :func:`signalled`.
_signalled = False


def signalled() -> bool:
    """Whether a stopping signal has arrived, though the event loop may not have heard yet.

    A worker checks it before it starts a message: with a handler running in the loop's own
    thread (``@consumer(inline=True)``) the loop hears of a signal only once the handler
    returns, and a message started meanwhile would outlast the stop the signal asked for.
    """
    return _signalled


def _note_signal(signum: int, frame: object) -> None:
    global _signalled  # noqa: PLW0603 - set from a signal handler, read by the workers
    _signalled = True


async def _sleep_unless(event: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), delay)


# -- helpers for services ----------------------------------------------------


class Kept:
    """Tasks a service starts from a callback, held until they end (the loop keeps only
    weak references to tasks)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class InFlight:
    """Counts deliveries being handled; :meth:`idle` returns once there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *_: object) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()
