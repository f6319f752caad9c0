"""Threads that run ``def`` handlers and procedures for an event loop.

``await loop.run_in_executor(ThreadPoolExecutor, ...)`` chains a
``concurrent.futures.Future`` to an asyncio one through callbacks and a
work-item class: ~90 us per call on uvloop here, against ~30 us for the same
hop through a plain queue and ``call_soon_threadsafe`` (a scratch
measurement recorded in docs/benchmarks.md). A worker runs one such hop per
message and an RPC server one per request, so they use :class:`Threads`.

:class:`LoopThread` takes no hop at all: it runs each call in the event loop's own
thread (``@consumer(inline=True)``), for short handlers whose time is the database's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("rabbitbus.runtime.threads")
T = TypeVar("T")

Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Threads:
    """Up to ``size`` threads, started as needed, running calls for coroutines.

    Threads are daemons: after :meth:`shutdown`, a call that outlives the
    process's grace period does not keep it from exiting (its message is
    not acked, so the broker delivers it again).
    """

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._closed = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in one of the threads; its result or exception."""
        if self._closed:
            raise RuntimeError(f"{self.name} threads are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.size:
            self._start_thread()
        self._jobs.put((loop, future, function, args))
        return await future

    def shutdown(self) -> None:
        """Let the threads end once the calls queued so far are done."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            try:
                _settle(loop, future, function(*args), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                _settle(loop, future, None, exc)
            job = future = None  # type: ignore[assignment] # not kept while this thread waits
            self._idle.release()


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the result
        loop.call_soon_threadsafe(_set, future, result, error)


def _set(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class LoopThread(Threads):
    """The event loop's own thread, as :class:`Threads` of one: each call runs at once,
    in the coroutine that awaits it, with no hop to another thread and back.

    The loop waits while a call runs: it reads deliveries, sends acks and heartbeats only
    between calls. A call that takes longer than ``warn_after`` seconds is logged, since
    one that outlasts the connection's heartbeat timeout costs the connection.
    """

    def __init__(self, name: str, warn_after: float) -> None:
        super().__init__(1, name)
        self.warn_after = warn_after

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self.name} thread is shut down")
        started = time.monotonic()
        try:
            with no_running_loop():
                return function(*args)
        finally:
            took = time.monotonic() - started
            if took > self.warn_after:
                logger.warning(
                    "%s held the worker's event loop for %.1f s (inline=True): no delivery "
                    "read, no ack sent, no heartbeat meanwhile; run handlers this long in a "
                    "thread (inline=False)",
                    self.name, took,
                )  # fmt: skip

    def shutdown(self) -> None:
        self._closed = True


@contextlib.contextmanager
def no_running_loop() -> Iterator[None]:
    """This thread's running event loop hidden for the ``with`` block.

    Django's ORM refuses to run where it sees a running loop (``SynchronousOnlyOperation``),
    rightly for a coroutine that would block it unawares; :class:`LoopThread` blocks the
    loop on purpose, for a ``def`` call the loop waits for anyway.
    """
    loop = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)
