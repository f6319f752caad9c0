"""rabbitbus.transport.frames: byte for byte what pamqp and pika marshal for the same frames."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pika
import pytest
from aiormq.abc import ChannelFrame, DeliveredMessage
from hypothesis import given
from hypothesis import strategies as st
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.frame import unmarshal
from pamqp.header import ContentHeader
from pika import frame, spec

from rabbitbus.messages import Delivery
from rabbitbus.transport import aio, frames

#: AMQP short strings: at most 255 bytes once encoded (60 characters of up to 4 bytes).
short = st.text(max_size=60)
#: Properties are never empty in RPC (pamqp leaves an empty one out, as unset).
prop = st.text(min_size=1, max_size=60)
optional_prop = st.none() | prop
#: 4096 is the smallest frame_max a broker may negotiate: bodies below span several frames.
frame_max = st.sampled_from([4096, 131072])


def pamqp_publish(channel: int, routing_key: str, body: bytes, size: int, **props: Any) -> bytes:
    chunk = size - frames.FRAME_OVERHEAD
    return ChannelFrame.marshall(
        channel,
        [
            Basic.Publish(exchange="", routing_key=routing_key, mandatory=props.pop("mandatory")),
            ContentHeader(
                properties=Basic.Properties(delivery_mode=1, **with_headers(props)),
                body_size=len(body),
            ),
            *(ContentBody(body[i : i + chunk]) for i in range(0, len(body), chunk)),
        ],
    ).payload


def with_headers(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with a ``deadline`` turned into the headers table it travels in."""
    deadline = props.pop("deadline", None)
    return props if deadline is None else {**props, "headers": {frames.DEADLINE_HEADER: deadline}}


#: Epoch milliseconds (pamqp and pika encode these as int64, ``l``).
deadlines = st.none() | st.integers(2**32, 2**63 - 1)


@given(
    channel=st.integers(1, 2047),
    routing_key=short,
    body=st.binary(max_size=10_000),
    size=frame_max,
    content_type=prop,
    correlation_id=prop,
    message_type=prop,
    reply_to=optional_prop,
    expiration=optional_prop,
    deadline=deadlines,
    mandatory=st.booleans(),
)
def test_publish_marshals_as_pamqp_does(
    channel: int, routing_key: str, body: bytes, size: int, **props: Any
) -> None:
    ours = frames.publish(
        channel, routing_key, body, body_frame_max=size - frames.FRAME_OVERHEAD, **props
    )
    assert ours == pamqp_publish(channel, routing_key, body, size, **props)


@given(channel=st.integers(1, 2047), tag=st.integers(1, 2**63 - 1))
def test_ack_marshals_as_pamqp_does(channel: int, tag: int) -> None:
    reference = ChannelFrame.marshall(channel, [Basic.Ack(delivery_tag=tag)]).payload
    assert frames.ack(channel, tag) == reference


def test_an_rpc_request_marshals_as_pika_does() -> None:
    body = b'{"args":[1],"kwargs":{}}'
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=1,
        type="rpc.request",
        expiration="10000",
        correlation_id="c0ffee",
        reply_to="amq.rabbitmq.reply-to",
        headers={frames.DEADLINE_HEADER: 1796308992721},
    )
    method = spec.Basic.Publish(exchange="", routing_key="rpc.fib", mandatory=True)
    reference = b"".join(
        (
            frame.Method(7, method).marshal(),
            frame.Header(7, len(body), properties).marshal(),
            frame.Body(7, body).marshal(),
        )
    )
    ours = frames.publish(
        7,
        "rpc.fib",
        body,
        body_frame_max=131072 - frames.FRAME_OVERHEAD,
        content_type="application/json",
        correlation_id="c0ffee",
        message_type="rpc.request",
        reply_to="amq.rabbitmq.reply-to",
        expiration="10000",
        deadline=1796308992721,
        mandatory=True,
    )
    assert ours == reference


def test_a_short_string_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        frames.publish(
            1, "é" * 200, b"", body_frame_max=4088, content_type="a", correlation_id="b",
            message_type="c",
        )  # fmt: skip


# -- reading deliveries ------------------------------------------------------

#: Values a ``headers`` table may hold (pamqp encodes and decodes each type).
header_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | prop,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(prop, inner, max_size=3),
    max_leaves=6,
)

#: Any property a delivery may carry: a request's deadline alone, or any headers table.
delivery_properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": prop,
        "content_encoding": prop,
        "delivery_mode": st.sampled_from([1, 2]),
        "priority": st.integers(0, 9),
        "correlation_id": prop,
        "reply_to": prop,
        "expiration": st.integers(1, 10**9).map(str),
        "message_id": prop,
        "timestamp": st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
        ).map(lambda moment: moment.replace(microsecond=0, tzinfo=UTC)),
        "message_type": prop,
        "user_id": prop,
        "app_id": prop,
        "deadline": deadlines,
        "headers": st.dictionaries(prop, header_values, max_size=4),
    },
)


def pamqp_delivery(
    channel: int,
    tag: int,
    body: bytes,
    size: int = 131072,
    redelivered: bool = False,
    exchange: str = "",
    routing_key: str = "rpc.fib",
    **props: Any,
) -> bytes:
    """A ``basic.deliver`` with its header and body frames, as pamqp marshals them."""
    chunk = size - frames.FRAME_OVERHEAD
    if "headers" in props and "deadline" in props:
        props["headers"] = {**props["headers"], frames.DEADLINE_HEADER: props.pop("deadline")}
    return ChannelFrame.marshall(
        channel,
        [
            Basic.Deliver(
                consumer_tag="ctag-1",
                delivery_tag=tag,
                redelivered=redelivered,
                exchange=exchange,
                routing_key=routing_key,
            ),  # fmt: skip
            ContentHeader(properties=Basic.Properties(**with_headers(props)), body_size=len(body)),
            *(ContentBody(body[i : i + chunk]) for i in range(0, len(body), chunk)),
        ],
    ).payload


def driver_read(data: bytes) -> Delivery:
    """What the driver's path makes of ``data``: pamqp unmarshals each frame (as aiormq
    does), then :func:`aio.delivery_of` reads the message."""
    parts = []
    while data:
        consumed, _channel, value = unmarshal(data)
        parts.append(value)
        data = data[consumed:]
    deliver, header, *bodies = parts
    body = b"".join(part.value for part in bodies)
    return aio.delivery_of(DeliveredMessage(deliver, header, body, cast(Any, None)))


@given(
    channel=st.integers(1, 2047),
    tag=st.integers(1, 2**63 - 1),
    redelivered=st.booleans(),
    body=st.binary(max_size=10_000),
    size=frame_max,
    exchange=st.from_regex(r"[a-zA-Z0-9_.:-]{0,60}", fullmatch=True),
    routing_key=short,
    props=delivery_properties,
)
def test_a_delivery_reads_as_the_driver_reads_it(
    channel: int,
    tag: int,
    redelivered: bool,
    body: bytes,
    size: int,
    exchange: str,
    routing_key: str,
    props: dict[str, Any],
) -> None:
    """Every field of the Delivery, headers included, is what aiormq's path gives: a
    consumer cannot tell which path read its message."""
    data = pamqp_delivery(channel, tag, body, size, redelivered, exchange, routing_key, **props)
    delivery = frames.parse_delivery(data, channel)
    assert delivery is not None
    assert delivery.end == len(data)
    assert delivery.frames == 2 + -(-len(body) // (size - frames.FRAME_OVERHEAD))
    delivery.frames = delivery.end = 0
    assert delivery == driver_read(data)
    assert (delivery.delivery_tag, delivery.redelivered, delivery.body) == (tag, redelivered, body)
    assert (delivery.exchange, delivery.routing_key) == (exchange, routing_key)


def test_every_cut_short_delivery_is_incomplete() -> None:
    data = pamqp_delivery(3, 7, b"x" * 9000, size=4096, correlation_id="c")
    for cut in range(len(data)):
        with pytest.raises(frames.Incomplete):
            frames.read_delivery(data[:cut] + b"", 0, 3)
        assert frames.parse_delivery(data[:cut], 3) is None


def test_headers_beside_a_deadline_and_a_deadline_of_another_type_are_read() -> None:
    deadline_and_more = {frames.DEADLINE_HEADER: 2**40, "x": 1}
    small_deadline = {frames.DEADLINE_HEADER: 5}  # encoded smaller than an int64
    for headers, deadline in ((deadline_and_more, 2**40), (small_deadline, 5)):
        data = pamqp_delivery(3, 7, b"{}", headers=headers)
        delivery = frames.parse_delivery(data, 3)
        assert delivery is not None
        assert (delivery.headers, delivery.deadline) == (headers, deadline)


def test_what_the_reader_leaves_to_the_driver() -> None:
    reply = pamqp_delivery(3, 7, b"{}", correlation_id="c")
    heartbeat = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    returned = ChannelFrame.marshall(
        3, [Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="q")]
    ).payload
    assert frames.parse_delivery(reply, 4) is None  # another channel
    assert frames.parse_delivery(returned + reply[len(returned) :], 3) is None
    assert frames.parse_delivery(heartbeat + reply, 3) is None
    assert frames.parse_delivery(reply + heartbeat, 3) is None  # not only the delivery
    assert frames.parse_delivery(reply + reply, 3) is None
    deliver, _, rest = reply.partition(b"\xce")
    interleaved = deliver + b"\xce" + heartbeat.replace(b"\x00\x00", b"\x00\x05", 1) + rest
    assert frames.read_delivery(interleaved, 0, 3) is None  # a frame of channel 5 in between
    with pytest.raises(ValueError, match="0xCE"):
        frames.read_delivery(reply.replace(b"\xce", b"\xcf", 1), 0, 3)
