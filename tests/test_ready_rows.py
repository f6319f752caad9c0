"""rabbitbus.tasks.ready_rows: the READY rows of concurrent aenqueue() calls, grouped
(pure logic: the writes are recorded, not made)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rabbitbus.tasks.ready_rows import ReadyRows


async def test_rows_asked_for_together_are_written_together() -> None:
    groups: list[list[int]] = []

    def write(rows: Sequence[int]) -> list[bool]:
        groups.append(list(rows))
        return [row % 2 == 0 for row in rows]

    ready = ReadyRows(write)
    flags = await asyncio.gather(*(ready.record(n) for n in range(10)))
    assert flags == [n % 2 == 0 for n in range(10)]  # each call gets its own row's flag
    assert groups == [list(range(10))]
    assert ready._writer is None  # nothing of this loop is kept once written


async def test_rows_asked_for_during_a_write_wait_for_the_next_one() -> None:
    groups: list[list[int]] = []
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()

    def write(rows: Sequence[int]) -> list[bool]:
        groups.append(list(rows))
        if len(groups) == 1:
            loop.call_soon_threadsafe(writing.set)
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.2), loop).result()
        return [True] * len(rows)

    ready = ReadyRows(write)
    first = asyncio.ensure_future(ready.record(0))
    await writing.wait()
    later = await asyncio.gather(*(ready.record(n) for n in range(1, 6)))
    assert await first and all(later)
    assert groups == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_write_fails_its_group_only() -> None:
    def write(rows: Sequence[int]) -> list[bool]:
        if 0 in rows:
            raise ConnectionError("the database is gone")
        return [False] * len(rows)

    ready = ReadyRows(write)
    outcomes = await asyncio.gather(*(ready.record(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert await ready.record(7) is False  # the next group is written as usual
    with pytest.raises(ConnectionError):
        await ready.record(0)
