"""Which ack and nack frames ``ChannelAcks`` sends, and in what order (pure logic).

The channel here only records frames; the worker tests cover the real broker.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.exceptions
import pytest

from rabbitbus.consuming.acks import ChannelAcks


class RecordingChannel:
    def __init__(self, closed: bool = False) -> None:
        self.frames: list[tuple[str, int, bool]] = []
        self.closed = closed

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        if self.closed:
            raise aiormq.exceptions.ChannelInvalidStateError("closed")
        self.frames.append(("ack", tag, multiple))

    async def basic_nack(self, tag: int, requeue: bool = True) -> None:
        self.frames.append(("nack", tag, requeue))


def deliver(acks: ChannelAcks, *tags: int) -> None:
    for tag in tags:
        acks.delivered(tag)


async def test_successes_in_one_iteration_become_one_multiple_ack() -> None:
    channel = RecordingChannel()
    acks = ChannelAcks(channel)
    deliver(acks, 1, 2, 3)
    for tag in (2, 1, 3):
        acks.ack(tag)
    await acks.settled()
    assert channel.frames == [("ack", 3, True)]


async def test_a_delivery_still_running_holds_back_nothing_and_is_never_covered() -> None:
    channel = RecordingChannel()
    acks = ChannelAcks(channel)
    deliver(acks, 1, 2, 3, 4)
    acks.ack(2)
    acks.ack(3)
    await acks.settled()
    assert channel.frames == [("ack", 2, False), ("ack", 3, False)]  # 1 runs on
    acks.ack(1)
    acks.ack(4)
    await acks.settled()
    assert channel.frames[2:] == [("ack", 4, True)]  # 1 and 4; 2 and 3 were already acked


async def test_a_nack_is_written_before_any_multiple_ack_passes_over_it() -> None:
    channel = RecordingChannel()
    acks = ChannelAcks(channel)
    deliver(acks, 1, 2, 3)
    acks.ack(1)
    await acks.nack(2, requeue=True)
    acks.ack(3)
    await acks.settled()
    assert channel.frames == [("nack", 2, True), ("ack", 3, True)]


async def test_a_gap_in_delivery_tags_turns_multiple_acks_off() -> None:
    channel = RecordingChannel()
    acks = ChannelAcks(channel)
    deliver(acks, 1, 3)  # 2 never reached the worker: a multiple ack would cover it
    acks.ack(1)
    acks.ack(3)
    await acks.settled()
    assert channel.frames == [("ack", 1, False), ("ack", 3, False)]


async def test_acks_on_a_closed_channel_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acks = ChannelAcks(RecordingChannel(closed=True))
    deliver(acks, 1, 2)
    acks.ack(1)
    acks.ack(2)
    with caplog.at_level(logging.INFO, logger="rabbitbus.consuming.acks"):
        await acks.settled()
    assert "2 deliveries belong to a closed channel" in caplog.text


async def test_acks_go_out_at_the_end_of_the_loop_iteration() -> None:
    channel = RecordingChannel()
    acks = ChannelAcks(channel)
    deliver(acks, 1)
    acks.ack(1)
    assert channel.frames == []
    for _ in range(3):
        await asyncio.sleep(0)
    assert channel.frames == [("ack", 1, False)]
