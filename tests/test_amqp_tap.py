"""rabbitbus.transport.amqp_tap.DeliveryTap: which bytes it takes and which reach aiormq, however
the socket cuts the stream (pure logic: frames marshalled by pamqp, no broker)."""

from __future__ import annotations

from dataclasses import dataclass

from aiormq.abc import ChannelFrame
from hypothesis import given
from hypothesis import strategies as st
from pamqp.body import ContentBody
from pamqp.commands import Basic

from rabbitbus.messages import Delivery
from rabbitbus.transport import amqp_tap
from tests.test_frames import pamqp_delivery

TAPPED, OTHER = 3, 4


@dataclass
class FakeChannel:
    number: int
    is_closed: bool = False


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


def tapped(
    channel: FakeChannel, *, ordered: bool = False
) -> tuple[amqp_tap.DeliveryTap, list[Delivery]]:
    taken: list[Delivery] = []
    tap = amqp_tap.DeliveryTap()
    tap.take(channel, taken.append, ordered=ordered)  # type: ignore[arg-type]
    return tap, taken


def request(
    tag: int, body: bytes = b'{"args":[1]}', channel: int = TAPPED, **props: object
) -> bytes:
    return pamqp_delivery(channel, tag, body, correlation_id=f"c{tag}", reply_to="r", **props)


#: (bytes, taken?) in stream order: everything a connection may carry beside requests.
STREAM = [
    (request(1), True),
    (request(2, channel=OTHER), False),
    (amqp_tap.HEARTBEAT, False),
    (request(3, b"x" * 200_000, size=4096), True),  # 49 body frames, all held, then taken
    (request(4, headers={"h": 1, "l": ["a", 2]}), True),  # any headers table
    (ChannelFrame.marshall(TAPPED, [Basic.CancelOk(consumer_tag="t")]).payload, False),
    (ChannelFrame.marshall(OTHER, [ContentBody(b"y" * 5000)]).payload, False),
    (request(5, b"z" * (amqp_tap.MAX_HELD + 1), size=131072), False),  # too big to hold
    (request(6, b""), True),
    (request(7), True),
]


def feed(tap: amqp_tap.DeliveryTap, data: bytes, cuts: list[int]) -> bytes:
    passed, start = [], 0
    for cut in [*sorted(cuts), len(data)]:
        passed.append(tap.split(data[start:cut]))
        start = cut
    return b"".join(passed)


@given(cuts=st.lists(st.integers(0, sum(len(part) for part, _ in STREAM)), max_size=40))
def test_takes_readable_deliveries_and_passes_the_rest_in_order(cuts: list[int]) -> None:
    tap, taken = tapped(FakeChannel(TAPPED))
    passed = feed(tap, b"".join(part for part, _ in STREAM), cuts)
    assert passed == b"".join(part for part, take in STREAM if not take)
    assert [d.delivery_tag for d in taken] == [1, 3, 4, 6, 7]
    assert taken[1].body == b"x" * 200_000
    assert taken[2].headers == {"h": 1, "l": ["a", 2]}
    assert taken[3].body == b""


@given(cuts=st.lists(st.integers(0, sum(len(part) for part, _ in STREAM)), max_size=40))
def test_an_ordered_channel_goes_to_aiormq_from_the_first_delivery_it_leaves(
    cuts: list[int],
) -> None:
    """A consumer's channel: once a delivery goes to aiormq (request 5, too big to hold),
    so do all after it, which would otherwise be handed over before it."""
    tap, taken = tapped(FakeChannel(TAPPED), ordered=True)
    passed = feed(tap, b"".join(part for part, _ in STREAM), cuts)
    left = 7  # STREAM's request 5
    assert passed == b"".join(part for n, (part, take) in enumerate(STREAM) if not take or n > left)
    assert [d.delivery_tag for d in taken] == [1, 3, 4]


def test_a_closed_channel_is_not_tapped_even_when_its_number_comes_back() -> None:
    channel = FakeChannel(TAPPED)
    tap, taken = tapped(channel)
    assert tap.split(request(1)) == b""
    channel.is_closed = True
    assert tap.split(request(2)) == request(2)
    channel.is_closed = False  # the number reused by a channel nobody tapped
    assert tap.split(request(3)) == request(3)
    assert [d.delivery_tag for d in taken] == [1]


def test_a_malformed_frame_sends_everything_to_aiormq_from_then_on() -> None:
    tap, taken = tapped(FakeChannel(TAPPED))
    bad = request(1).replace(b"\xce", b"\xcf", 1)
    assert tap.split(bad + request(2)) == bad + request(2)
    assert tap.split(request(3)) == request(3)
    assert taken == []


def test_aiormq_gets_a_heartbeat_when_the_tap_kept_everything_for_a_while() -> None:
    tap, taken = tapped(FakeChannel(TAPPED))
    loop = tap.loop = FakeLoop()  # type: ignore[assignment]
    tap._passed_at = loop.now
    assert tap.split(request(1)) == b""
    loop.now += amqp_tap.KEEPALIVE + 0.1
    assert tap.split(request(2)) == amqp_tap.HEARTBEAT
    assert tap.split(request(3)) == b""  # just had one
    big = ChannelFrame.marshall(OTHER, [ContentBody(b"y" * 5000)]).payload
    assert tap.split(big[:100]) == big[:100]
    loop.now += amqp_tap.KEEPALIVE + 0.1
    # Mid-frame for aiormq: no heartbeat may go in between.
    assert tap.split(big[100:200]) == big[100:200]
    assert tap.split(big[200:] + request(5)) == big[200:]
    assert [d.delivery_tag for d in taken] == [1, 2, 3, 5]
