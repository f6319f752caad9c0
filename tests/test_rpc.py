"""RPC clients and server against the real broker, sync and async side by side."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from rabbitbus import rpc
from rabbitbus.exceptions import NoRoute, NoServer, RemoteError, RpcTimeout
from rabbitbus.transport import connections
from tests.broker import Broker, unique
from tests.rpc_support import serving
from tests.testapp.rabbit import OutOfStock


@pytest.fixture(scope="module")
def echo_server() -> object:
    with serving("test.echo", "test.aecho", "test.fail", "test.out_of_stock"):
        yield


@pytest.fixture(scope="module")
def slow_server() -> object:
    with serving("test.sleep"):
        yield


@pytest.fixture
async def aclosing() -> object:
    """Close this loop's connections before pytest-asyncio closes the loop."""
    yield
    await connections.aclose_all()


def empty_rpc_queue(broker: Broker) -> str:
    """A procedure name whose queue exists but has no server."""
    name = unique("test.noserver")
    with broker.channel() as channel:
        channel.queue_declare(rpc.queue_name(name), durable=True)
    return name


def test_call_returns_the_result(echo_server: object) -> None:
    assert rpc.call("test.echo", 1, "two", key=[3]) == {"args": [1, "two"], "kwargs": {"key": [3]}}


async def test_acall_returns_the_result(echo_server: object, aclosing: None) -> None:
    result = await rpc.acall("test.echo", 1, "two", key=[3])
    assert result == {"args": [1, "two"], "kwargs": {"key": [3]}}


def test_call_serves_async_procedures(echo_server: object) -> None:
    assert rpc.call("test.aecho", {"nested": [1.5]}) == {"nested": [1.5]}


async def test_200_concurrent_acalls_each_get_their_own_answer(
    echo_server: object, aclosing: None
) -> None:
    results = await asyncio.gather(*(rpc.acall("test.aecho", n) for n in range(200)))
    assert results == list(range(200))


def test_calls_bigger_than_a_frame_arrive_whole_and_every_request_is_acked(
    echo_server: object, broker: Broker
) -> None:
    """Requests and replies of several body frames (the broker's frame_max is 128 KiB)
    go out whole, as do the small ones, and every request is acked with its reply."""
    big = "x" * 300_000
    assert rpc.call("test.aecho", big) == big
    assert [rpc.call("test.aecho", n) for n in range(50)] == list(range(50))
    queue = rpc.queue_name("test.aecho")
    assert broker.wait_for(lambda: broker.unacked(queue) == 0, timeout=10)
    assert broker.queue_depth(queue) == 0


async def test_acalls_bigger_than_a_frame_arrive_whole(echo_server: object, aclosing: None) -> None:
    big = ["y" * 1000] * 300
    assert await rpc.acall("test.aecho", big) == big


def test_sync_calls_from_several_threads_at_once(echo_server: object) -> None:
    results: dict[int, object] = {}

    def worker(n: int) -> None:
        results[n] = [rpc.call("test.aecho", [n, i]) for i in range(20)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {n: [[n, i] for i in range(20)] for n in range(8)}


def test_call_with_no_server_times_out_within_ten_percent(broker: Broker) -> None:
    name = empty_rpc_queue(broker)
    started = time.monotonic()
    with pytest.raises(NoServer, match=f"no server consumes rpc.{name}"):
        rpc.call(name, timeout=1.0)
    assert 0.9 <= time.monotonic() - started <= 1.1
    # The request expired with the call (expiration = timeout): no server will ever run it.
    assert broker.wait_for(lambda: broker.queue_depth(rpc.queue_name(name)) == 0, timeout=1)


async def test_acall_with_no_server_times_out_within_ten_percent(
    broker: Broker, aclosing: None
) -> None:
    name = empty_rpc_queue(broker)
    started = time.monotonic()
    with pytest.raises(NoServer, match=f"no server consumes rpc.{name}"):
        await rpc.acall(name, timeout=1.0)
    assert 0.9 <= time.monotonic() - started <= 1.1


def test_rpc_timeout_is_a_timeout_error() -> None:
    assert issubclass(RpcTimeout, TimeoutError)
    assert issubclass(NoServer, RpcTimeout)


def test_a_slow_server_is_a_timeout_not_a_missing_server(slow_server: object) -> None:
    with pytest.raises(RpcTimeout) as excinfo:
        rpc.call("test.sleep", 1.5, timeout=0.3)
    assert not isinstance(excinfo.value, NoServer)


async def test_a_slow_server_is_a_timeout_not_a_missing_server_async(
    slow_server: object, aclosing: None
) -> None:
    with pytest.raises(RpcTimeout) as excinfo:
        await rpc.acall("test.sleep", 1.5, timeout=0.3)
    assert not isinstance(excinfo.value, NoServer)


def test_call_without_server_queue_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(NoRoute, match="no-such"):
        rpc.call(f"no-such.{uuid.uuid4().hex}", timeout=5)
    assert time.monotonic() - started < 1.0


async def test_acall_without_server_queue_fails_at_once(aclosing: None) -> None:
    started = time.monotonic()
    with pytest.raises(NoRoute, match="no-such"):
        await rpc.acall(f"no-such.{uuid.uuid4().hex}", timeout=5)
    assert time.monotonic() - started < 1.0


def test_remote_exception_arrives_as_remote_error(echo_server: object) -> None:
    with pytest.raises(RemoteError) as caught:
        rpc.call("test.fail", "boom")
    assert caught.value.type == "tests.testapp.rabbit.Unregistered"
    assert caught.value.message == "boom"
    assert caught.value.code == "unregistered"


async def test_remote_exception_arrives_as_remote_error_async(
    echo_server: object, aclosing: None
) -> None:
    with pytest.raises(RemoteError) as caught:
        await rpc.acall("test.fail", "boom")
    assert (caught.value.type, caught.value.message) == (
        "tests.testapp.rabbit.Unregistered",
        "boom",
    )


def test_registered_remote_exception_is_rebuilt_as_its_class(echo_server: object) -> None:
    with pytest.raises(OutOfStock, match="sku-1 is sold out"):
        rpc.call("test.out_of_stock", "sku-1")


async def test_registered_remote_exception_is_rebuilt_async(
    echo_server: object, aclosing: None
) -> None:
    with pytest.raises(OutOfStock, match="sku-1 is sold out"):
        await rpc.acall("test.out_of_stock", "sku-1")


def test_bad_arguments_arrive_as_remote_type_error(echo_server: object) -> None:
    with pytest.raises(RemoteError) as caught:
        rpc.call("test.aecho", 1, 2, 3)
    assert caught.value.type == "TypeError"
