"""rabbitbus.frames: byte for byte what pamqp and pika marshal for the same frames."""

from __future__ import annotations

from typing import Any

import pika
import pytest
from aiormq.abc import ChannelFrame
from hypothesis import given
from hypothesis import strategies as st
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from pika import frame, spec

from rabbitbus import frames

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
                properties=Basic.Properties(delivery_mode=1, **props), body_size=len(body)
            ),
            *(ContentBody(body[i : i + chunk]) for i in range(0, len(body), chunk)),
        ],
    ).payload


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
        mandatory=True,
    )
    assert ours == reference


def test_a_short_string_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        frames.publish(
            1, "é" * 200, b"", body_frame_max=4088, content_type="a", correlation_id="b",
            message_type="c",
        )  # fmt: skip
