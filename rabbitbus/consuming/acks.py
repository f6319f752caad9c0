"""Settling the deliveries of one channel, with acks coalesced into ``multiple=True``.

A worker acks a delivery only once its handler succeeded (or its retry or
dead-letter copy was confirmed). Instead of one ack frame per message, the acks
that fall due in one event-loop iteration go out together, at the end of it:

* the run of due deliveries at the head of the channel (every earlier delivery
  is settled) is acked with one ``basic.ack(multiple=True)`` up to its last tag;
* a due delivery behind one still running, or being nacked, is acked on its
  own at once: a slow handler never holds back the acks of faster ones, and
  a multiple ack never covers a delivery that has not succeeded.

Delivery tags of a channel count up from 1. A gap (a delivery the worker never
saw) turns multiple acks off for that channel, since they would cover it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from rabbitbus.transport.aio import RECOVERABLE

logger = logging.getLogger("rabbitbus.consuming.acks")


class ChannelAcks:
    """The unsettled deliveries of one channel, in delivery order."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.unsettled: deque[int] = deque()
        self.due: set[int] = set()
        self.last_tag = 0
        self.coalesce = True
        self.flush_pending = False
        self.sending: asyncio.Future[None] | None = None

    def delivered(self, tag: int) -> None:
        """Record a delivery; call for each, in the order they arrive."""
        if tag != self.last_tag + 1:
            self.coalesce = False
        self.last_tag = tag
        self.unsettled.append(tag)

    def ack(self, tag: int) -> None:
        """Ack ``tag`` at the end of this loop iteration (the handler succeeded)."""
        self.due.add(tag)
        self._schedule()

    async def nack(self, tag: int, requeue: bool) -> None:
        """Nack ``tag`` now; raises what the channel raises (a closed channel)."""
        try:
            await self.channel.basic_nack(tag, requeue=requeue)
        finally:  # only once the nack is written may a multiple ack pass over it
            self.unsettled.remove(tag)
            self._schedule()

    async def settled(self) -> None:
        """Send what is due now and wait until it is written (for shutdown)."""
        if self.flush_pending:
            self.flush()
        if self.sending is not None:
            await self.sending

    def _schedule(self) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if not self.flush_pending:
            return
        self.flush_pending = False
        head: list[int] = []
        while self.unsettled and self.unsettled[0] in self.due:
            head.append(self.unsettled.popleft())
        for tag in self.due.difference(head):  # behind a delivery not yet settled
            self.unsettled.remove(tag)
        alone = sorted(self.due.difference(head))
        self.due.clear()
        if head or alone:
            previous = self.sending
            self.sending = asyncio.ensure_future(self._send(head, alone, previous))

    async def _send(self, head: list[int], alone: list[int], previous: Any) -> None:
        if previous is not None:
            await previous  # one writer at a time keeps the frames in order
        try:
            if head and self.coalesce:
                await self.channel.basic_ack(head[-1], multiple=len(head) > 1, wait=False)
                head = []
            for tag in head + alone:
                await self.channel.basic_ack(tag, wait=False)
        except (*RECOVERABLE, RuntimeError) as exc:
            # The channel died after delivery: the broker requeued them (aio-pika#312).
            logger.info(
                "%d deliveries belong to a closed channel (%s); they will be redelivered",
                len(head) + len(alone), type(exc).__name__,
            )  # fmt: skip
