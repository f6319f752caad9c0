"""``RABBITBUS["FAST_PATHS"] = False``: every path on the drivers' public API, and the
same outcomes (issue 15). CI also runs the publishing, worker and RPC modules whole with
the switch off (scripts/test.sh, RABBITBUS_TEST_FAST_PATHS=off)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus import rpc
from rabbitbus.exceptions import ExchangeNotFound, Unroutable
from rabbitbus.rpc import client as rpc_client
from rabbitbus.transport import connections, sync_rpc
from rabbitbus.transport.confirms import ConfirmChannel, PublicConfirmChannel
from tests.broker import Broker, unique
from tests.rpc_support import serving


@pytest.fixture
def fast_paths(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The switch as the test's parameter says, with fresh connections on each side."""
    from django.conf import settings as django_settings

    on = request.param
    connections.close_all()
    with override_settings(RABBITBUS={**django_settings.RABBITBUS, "FAST_PATHS": on}):
        yield on
    connections.close_all()


@pytest.mark.parametrize("fast_paths", [True, False], indirect=True, ids=["on", "off"])
def test_publishing_confirms_on_the_channel_the_switch_picks(
    fast_paths: bool, broker: Broker, exchange: str, queue: str
) -> None:
    result = rabbitbus.publish_many([rabbitbus.Message(exchange, "k", {"n": n}) for n in range(5)])
    assert result.ok and len(result.confirmed) == 5
    channel = connections.get_sync().confirm_channel()
    assert type(channel) is (ConfirmChannel if fast_paths else PublicConfirmChannel)
    lonely = unique("test.lonely")
    with broker.channel() as setup:
        setup.exchange_declare(lonely, "topic", auto_delete=False)
    try:
        with pytest.raises(Unroutable):
            rabbitbus.publish(lonely, "nobody.listens", {"n": 0})
    finally:
        with broker.channel() as setup:
            setup.exchange_delete(lonely)
    with pytest.raises(ExchangeNotFound):
        rabbitbus.publish("no-such-exchange", "k", {"n": 0})
    rabbitbus.publish(exchange, "k", {"n": 5})  # a fresh channel after the broker's close
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 6)


def test_a_batch_with_a_missing_exchange_settles_every_message_without_fast_paths(
    broker: Broker, exchange: str, queue: str
) -> None:
    from django.conf import settings as django_settings

    with override_settings(RABBITBUS={**django_settings.RABBITBUS, "FAST_PATHS": False}):
        result = rabbitbus.publish_many(
            [
                rabbitbus.Message(exchange, "k", {"n": 1}),
                rabbitbus.Message("no-such-exchange", "k", {"n": 2}),
                rabbitbus.Message(exchange, "k", {"n": 3}),
            ]
        )
    assert len(result.confirmed) == 2
    assert [type(error) for error in result.failed.values()] == [ExchangeNotFound]
    assert broker.wait_for(lambda: broker.queue_depth(queue) == 2)


@pytest.mark.parametrize("fast_paths", [True, False], indirect=True, ids=["on", "off"])
def test_rpc_serves_and_calls_without_the_tap_or_the_reply_reader(fast_paths: bool) -> None:
    with serving("test.echo", "test.aecho") as server:
        assert rpc.call("test.echo", "hi") == {"args": ["hi"], "kwargs": {}}
        assert rpc.call("test.aecho", {"x": [1, 2]}) == {"x": [1, 2]}
        taps = [service.tap for service in server.runtime.services]  # type: ignore[union-attr]
        client = connections.get_sync().rpc_client
        assert client is not None and client.channel is not None
        reader = sync_rpc.ReplyReader.attach(client.channel)
    if fast_paths:
        assert all(tap is not None for tap in taps) and reader is not None
    else:
        assert taps == [None, None] and reader is None


@pytest.mark.parametrize("fast_paths", [True, False], indirect=True, ids=["on", "off"])
def test_acall_hears_a_returned_request_either_way(fast_paths: bool) -> None:
    """On: no confirms, the returns read by transport.aio.on_returns. Off: each request
    waits for its confirm, and aiormq's public return callbacks hear it first."""

    async def calls() -> tuple[object, bool]:
        try:
            answer = await rpc.acall("test.aecho", "hi")
            with pytest.raises(rpc.NoRoute):
                await rpc.acall(unique("nobody.serves"), timeout=30)
            channel = rpc_client.async_client()._channel
            return answer, bool(channel is not None and channel.publisher_confirms)
        finally:
            await connections.aclose_all()

    with serving("test.aecho"):
        answer, confirms = asyncio.run(calls())
    assert answer == "hi"
    assert confirms is not fast_paths


def test_ci_runs_the_second_pass_with_the_switch_off() -> None:
    """The setting follows RABBITBUS_TEST_FAST_PATHS, so the second pass is what it says."""
    from rabbitbus.conf import settings

    assert settings.FAST_PATHS is (os.environ.get("RABBITBUS_TEST_FAST_PATHS", "on") != "off")
