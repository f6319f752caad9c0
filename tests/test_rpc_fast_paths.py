"""The RPC fast paths against the real broker: what they leave to pika and aiormq
still works, and they keep connections alive past their heartbeats.

The sync client reads replies past pika (:class:`rabbitbus.transport.sync_rpc.ReplyReader`)
and the server takes requests past aiormq (:mod:`rabbitbus.transport.amqp_tap`); anything
they do not read goes to the driver. tests/test_frames.py and
tests/test_amqp_tap.py check the reading itself.
"""

from __future__ import annotations

import time
from typing import Any

import pika
from django.conf import settings as django_settings
from django.test import override_settings

from rabbitbus import rpc
from rabbitbus.transport import amqp_tap, connections
from tests.broker import Broker, unique
from tests.rpc_support import raw_server, serving

HEADERS = {"trace-id": "abc", "attempt": 1}
OK_7 = b'{"ok":true,"result":7}'


def test_requests_the_tap_does_not_read_are_served_through_aiormq(broker: Broker) -> None:
    with serving("test.aecho"):
        several_frames = "y" * 200_000  # frame_max is 128 KiB: the tap holds, then takes it
        assert rpc.call("test.aecho", several_frames) == several_frames
        too_big = "x" * (amqp_tap.MAX_HELD + 1000)
        assert rpc.call("test.aecho", too_big) == too_big
        assert (
            call_with_headers(broker, "test.aecho", b'{"args": [7]}') == b'{"ok":true,"result":7}'
        )
        assert rpc.call("test.aecho", 8) == 8


def call_with_headers(broker: Broker, name: str, body: bytes) -> bytes:
    """A request carrying a headers table (rabbitbus never sends one), by raw pika."""
    replies: list[bytes] = []
    connection = pika.BlockingConnection(broker.parameters())
    try:
        channel = connection.channel()
        channel.basic_consume(
            "amq.rabbitmq.reply-to", lambda *a: replies.append(a[3]), auto_ack=True
        )
        properties = pika.BasicProperties(
            content_type="application/json",
            correlation_id="with-headers",
            reply_to="amq.rabbitmq.reply-to",
            headers=HEADERS,
        )
        channel.basic_publish("", rpc.queue_name(name), body, properties)
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
    finally:
        connection.close()
    assert replies, "no reply"
    return replies[0]


def test_replies_the_reader_does_not_read_are_handled_by_pika(broker: Broker) -> None:
    name = unique("test.headers")

    def respond(channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        payload = b'{"ok":true,"result":%s}' % body[len(b'{"args":[') : -len(b'],"kwargs":{}}')]
        channel.basic_publish(
            "",
            properties.reply_to,
            payload,
            pika.BasicProperties(
                content_type="application/json",
                correlation_id=properties.correlation_id,
                headers=HEADERS,
            ),
        )

    with raw_server(broker, rpc.queue_name(name), respond):
        assert rpc.call(name, 1, timeout=5) == 1
        assert rpc.call(name, "z" * 300_000, timeout=5) == "z" * 300_000  # many reads
        assert rpc.call(name, 3, timeout=5) == 3


def test_back_to_back_calls_keep_both_connections_alive_past_their_heartbeats(
    broker: Broker,
) -> None:
    """A busy broker sends no heartbeats; pika and aiormq must still see traffic."""
    options = {"URL": django_settings.TEST_URL, "HEARTBEAT": 1}
    with (
        override_settings(RABBITBUS={"CONNECTIONS": {"default": options}}),
        serving("test.aecho") as server,
    ):
        n, until = 0, time.monotonic() + 8  # eight heartbeat intervals of calls
        while time.monotonic() < until:
            assert rpc.call("test.aecho", n, timeout=5) == n
            n += 1
        assert connections.get_sync().reconnects == 0
        assert server.runtime is not None
        assert server.runtime.reconnects == 0
