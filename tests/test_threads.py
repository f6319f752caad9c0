"""rabbitbus.runtime.threads.Threads: results, errors, limits and shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rabbitbus.runtime.threads import Threads


def test_returns_results_and_raises_errors_from_other_threads() -> None:
    threads = Threads(2, "t")

    def fail() -> None:
        raise KeyError("nope")

    async def main() -> None:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        assert await threads.run(threading.get_ident) != threading.get_ident()
        with pytest.raises(KeyError, match="nope"):
            await threads.run(fail)

    asyncio.run(main())
    threads.shutdown()


def test_runs_at_most_size_calls_at_once_and_starts_threads_only_when_needed() -> None:
    threads = Threads(3, "t")
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1

    async def main() -> None:
        assert await threads.run(int) == 0
        assert len(threads._threads) == 1  # one call at a time needs one thread
        calls = [asyncio.ensure_future(threads.run(work)) for _ in range(8)]
        while running < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert running == 3  # the other five wait for a thread
        release.set()
        await asyncio.gather(*calls)

    asyncio.run(main())
    assert peak == 3
    assert len(threads._threads) == 3
    threads.shutdown()
    for thread in threads._threads:
        thread.join(10)
        assert not thread.is_alive()


def test_a_cancelled_caller_leaves_the_thread_working() -> None:
    threads = Threads(1, "t")
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "late"

    async def main() -> None:
        call = asyncio.ensure_future(threads.run(slow))
        await asyncio.to_thread(started.wait, 10)
        call.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await threads.run(lambda: "next") == "next"

    asyncio.run(main())
    threads.shutdown()


def test_no_calls_after_shutdown() -> None:
    threads = Threads(1, "t")
    threads.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(threads.run(int))
    with pytest.raises(ValueError, match="at least 1"):
        Threads(0, "t")
