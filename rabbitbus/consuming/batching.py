"""Group commit for ``@consumer(transaction="batch")``.

Deliveries wait in a :class:`Batcher` while the consumer's threads are busy;
each batch (up to ``prefetch`` deliveries, at most ``concurrency`` batches at a
time) runs in one database transaction, inbox rows included
(:func:`rabbitbus.consuming.dispatch.run_batch`). The worker acks them once it commits.
If a handler fails, the batch is rolled back and its deliveries run again one
transaction each, through the worker's usual path, so only the culprit is
retried or dead-lettered and every other message's effect is applied once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rabbitbus.consuming import dispatch
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import DecodeError
from rabbitbus.messages import Delivery, ReceivedMessage
from rabbitbus.runtime.threads import Threads


class Batcher:
    """Collects a consumer's deliveries and runs them in batches."""

    def __init__(
        self,
        spec: ConsumerSpec,
        threads: Threads,
        one_by_one: Callable[[Delivery], Awaitable[dispatch.Outcome]],
        stopping: Callable[[], bool],
    ) -> None:
        self.spec = spec
        self.threads = threads
        self.one_by_one = one_by_one
        self.stopping = stopping
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.pending: list[tuple[Delivery, asyncio.Future[dispatch.Outcome | None]]] = []
        self.flusher: asyncio.Future[None] | None = None
        #: Batches committed whole, and batches run again one message at a time.
        self.counts = {"batches": 0, "split": 0}

    async def submit(self, raw: Delivery) -> dispatch.Outcome | None:
        """``raw``'s outcome once its batch ran; None if it never started."""
        outcome: asyncio.Future[dispatch.Outcome | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending.append((raw, outcome))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self._flush())
        return await outcome

    async def _flush(self) -> None:
        """Hand the pending deliveries to free slots, a batch each, until none wait."""
        while self.pending:
            await self.slots.acquire()
            batch, self.pending = (
                self.pending[: self.spec.prefetch],
                self.pending[self.spec.prefetch :],
            )
            if not batch:
                self.slots.release()
                return
            running = asyncio.ensure_future(self._run(batch))
            running.add_done_callback(lambda _: self.slots.release())

    async def _run(
        self, batch: list[tuple[Delivery, asyncio.Future[dispatch.Outcome | None]]]
    ) -> None:
        try:
            outcomes = await self._outcomes([raw for raw, _ in batch])
        except BaseException as exc:  # cancelled (shutdown): nobody may wait for ever
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _outcomes(self, batch: list[Delivery]) -> list[dispatch.Outcome | None]:
        if self.stopping():
            return [None] * len(batch)  # not started: the next worker takes them now
        decoded: dict[int, ReceivedMessage] = {}
        outcomes: list[dispatch.Outcome | None] = [None] * len(batch)
        for index, raw in enumerate(batch):
            try:
                decoded[index] = dispatch.receive(self.spec, raw)
            except DecodeError:
                outcomes[index] = await self.one_by_one(raw)  # dead-lettered, and logged
        if decoded:
            try:
                duplicates = await self.threads.run(
                    dispatch.run_batch, self.spec, list(decoded.values())
                )
            except Exception:  # noqa: BLE001 - rolled back: find the culprit one by one
                self.counts["split"] += 1
                for index in decoded:
                    outcomes[index] = await self.one_by_one(batch[index])
            else:
                self.counts["batches"] += 1
                for index, duplicate in zip(decoded, duplicates, strict=True):
                    outcomes[index] = dispatch.Outcome(dispatch.ACK, duplicate=duplicate)
        return outcomes
