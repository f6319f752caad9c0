"""Threads that run ``def`` handlers and procedures for an event loop.

``await loop.run_in_executor(ThreadPoolExecutor, ...)`` chains a
``concurrent.futures.Future`` to an asyncio one through callbacks and a
work-item class: ~90 us per call on uvloop here, against ~30 us for the same
hop through a plain queue and ``call_soon_threadsafe`` (a scratch
measurement recorded in docs/benchmarks.md). A worker runs one such hop per
message and an RPC server one per request, so they use :class:`Threads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

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
