"""The ``READY`` rows of concurrent ``aenqueue()`` calls, written together.

An ``aenqueue()`` that records its task waits for its row before it publishes
(the row is never behind the message). Written one by one, each row is a hop to
Django's sync thread and a commit of its own, in turn, for every caller on the
loop. Here the rows that arrive while a write is under way wait for the next one:
one hop and one multi-row ``INSERT`` (one commit) for all of them, as many as
were asked for meanwhile. A failed write fails every call of its group, before
anything was published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from asgiref.sync import sync_to_async

Row = TypeVar("Row")


class ReadyRows(Generic[Row]):
    """One loop's pending rows and the task that writes them.

    ``write`` runs in Django's sync thread (``thread_sensitive``) with the rows of one
    group; it returns one flag per row (True: that call needs no publish of its own,
    see :meth:`~rabbitbus.tasks.backend.RabbitMQBackend.aenqueue`).
    """

    def __init__(self, write: Callable[[Sequence[Row]], list[bool]]) -> None:
        self._write = sync_to_async(write, thread_sensitive=True)
        self._pending: list[tuple[Row, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: Row) -> bool:
        """Wait until ``row`` is written (with the others asked for meanwhile); its flag."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    flags = await self._write([row for row, _ in group])
                except Exception as exc:  # noqa: BLE001 - every waiter of the group gets it
                    _fail(group, exc)
                    continue
                except BaseException as exc:  # cancelled: the calls still waiting end too
                    group, self._pending = group + self._pending, []
                    _fail(group, exc)
                    raise
                for (_, future), flag in zip(group, flags, strict=True):
                    if not future.done():
                        future.set_result(flag)
        finally:
            # No reference to the loop outlives the writes (the backend keeps this object
            # per loop, weakly: loops made by async_to_sync come and go).
            self._writer = None


def _fail(group: Sequence[tuple[object, asyncio.Future[bool]]], error: BaseException) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(error)
