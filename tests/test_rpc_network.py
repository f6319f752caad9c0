"""The RPC server through a misbehaving network (the fault proxy), broker untouched.

The server reads requests off its socket itself (:mod:`rabbitbus.transport.amqp_tap`), so
its connection is cut at byte offsets (RELIABILITY.md F4 for the RPC server)
and fed a few bytes at a time: every frame boundary falls somewhere new. The
server connects through the proxy; callers go straight to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from django.test import override_settings

from rabbitbus import rpc
from rabbitbus.exceptions import BrokerConnectionError, RpcError, RpcTimeout
from rabbitbus.transport import connections
from tests.broker import Broker, rabbitbus_through
from tests.fault_proxy import FaultProxy
from tests.rpc_support import serving

OFFSETS = [2**n for n in range(5, 14)]


@pytest.fixture
def server_through_proxy(proxy: FaultProxy, broker: Broker) -> Iterator[object]:
    """The server's connections go through ``proxy``; beats are rare (one at start)."""
    rabbitbus = {**rabbitbus_through(proxy.port), "WORKER": {"HEARTBEAT_INTERVAL": 3600}}
    with override_settings(RABBITBUS=rabbitbus), serving("test.aecho") as server:
        assert broker.wait_for(lambda: proxy.stats["active"] >= 1, timeout=20)
        yield server


def call(n: object, timeout: float = 10) -> object:
    return rpc.call("test.aecho", n, timeout=timeout, connection="direct")


def test_a_server_cut_at_every_byte_offset_answers_every_call_after(
    broker: Broker, proxy: FaultProxy, server_through_proxy: object
) -> None:
    runtime = server_through_proxy.runtime  # type: ignore[attr-defined]
    for number, cut in enumerate(OFFSETS, start=1):
        proxy.cut_next(cut)  # the reconnection dies after ``cut`` bytes, the next one lives
        proxy.drop_all()
        assert broker.wait_for(lambda n=number: runtime.reconnects >= n, timeout=30)
        answered = 0
        for n in range(20):
            # Asked while the server was down: expired, never run late.
            with contextlib.suppress(RpcTimeout):
                answered += call([cut, n]) == [cut, n]
        assert answered >= 15, f"cut at {cut}: {answered} of 20 answered"
        assert [call([cut, n]) for n in range(5)] == [[cut, n] for n in range(5)]
    assert broker.wait_for(lambda: broker.consumers(rpc.queue_name("test.aecho")) == 1, 20)


@pytest.mark.parametrize("bytes_per_read", [7, 50, 333])
def test_requests_arriving_a_few_bytes_at_a_time_are_all_answered(
    proxy: FaultProxy, server_through_proxy: object, bytes_per_read: int
) -> None:
    proxy.bandwidth(bytes_per_read * 100, chunk=bytes_per_read)  # 100 reads a second
    values = [{"n": n, "pad": "p" * 40 * n} for n in range(4)]
    assert [call(value, timeout=30) for value in values] == values
    proxy.bandwidth(None)
    assert server_through_proxy.runtime.reconnects == 0  # type: ignore[attr-defined]


def test_a_black_hole_is_noticed_by_heartbeats_and_calls_are_answered_after(
    broker: Broker, proxy: FaultProxy
) -> None:
    """F5 for the server: its tap keeps heartbeats from aiormq only while bytes flow, so
    a silent network still lets aiormq's heartbeat timer declare the connection dead."""
    options = {"HEARTBEAT": 2, "CONNECTION_TIMEOUT": 2}
    rabbitbus = {**rabbitbus_through(proxy.port, **options), "WORKER": {"HEARTBEAT_INTERVAL": 3600}}
    with override_settings(RABBITBUS=rabbitbus), serving("test.aecho") as server:
        runtime = server.runtime
        assert runtime is not None
        assert call(1) == 1
        proxy.blackhole()
        assert broker.wait_for(lambda: not runtime.ready, timeout=2 * (2 + 5))
        proxy.pass_through()
        assert broker.wait_for(lambda: runtime.ready and runtime.reconnects >= 1, timeout=10 + 2)
        assert [call(n) for n in range(5)] == list(range(5))


def client_through(proxy: FaultProxy) -> override_settings:
    """The callers' connections go through ``proxy``; the server (``direct``) does not."""
    return override_settings(RABBITBUS=rabbitbus_through(proxy.port, RECONNECT_TIMEOUT=5))


@pytest.mark.parametrize("kind", ["call", "acall"])
def test_a_caller_cut_at_every_byte_offset_gets_an_answer_or_a_clear_error(
    broker: Broker, proxy: FaultProxy, kind: str
) -> None:
    """The caller's connection dies after 32..8192 bytes: each call returns its answer or
    raises an RpcError or BrokerConnectionError (never a driver's RuntimeError), and the
    calls after it work."""
    server = {**rabbitbus_through(proxy.port), "WORKER": {"HEARTBEAT_INTERVAL": 3600}}
    server["CONNECTIONS"]["default"] = server["CONNECTIONS"]["direct"]  # type: ignore[index]
    with override_settings(RABBITBUS=server), serving("test.aecho"), client_through(proxy):
        outcomes = asyncio.run(acalls(proxy)) if kind == "acall" else calls(proxy)
    assert all(outcome == "answered" or outcome in CLEAR for outcome in outcomes), outcomes


CLEAR = {"RpcTimeout", "NoServer", "BrokerConnectionError", "BrokerUnavailable"}


def calls(proxy: FaultProxy) -> list[str]:
    outcomes: list[str] = []
    for cut in OFFSETS:
        round_ = Round(proxy, cut, outcomes)
        for n in range(100):
            try:
                round_.answered(rpc.call("test.aecho", [cut, n], timeout=5), [cut, n])
            except (RpcError, BrokerConnectionError) as exc:
                if round_.failed(exc):
                    break
        assert [rpc.call("test.aecho", n, timeout=10) for n in range(3)] == [0, 1, 2]
    return outcomes


async def acalls(proxy: FaultProxy) -> list[str]:
    outcomes: list[str] = []
    try:
        for cut in OFFSETS:
            round_ = Round(proxy, cut, outcomes)
            for n in range(100):
                try:
                    round_.answered(await rpc.acall("test.aecho", [cut, n], timeout=5), [cut, n])
                except (RpcError, BrokerConnectionError) as exc:
                    if round_.failed(exc):
                        break
            assert [await rpc.acall("test.aecho", n, timeout=10) for n in range(3)] == [0, 1, 2]
    finally:
        await connections.aclose_all()
    return outcomes


class Round:
    """One cut: the caller's connection is dropped, and its next one dies after ``cut`` bytes.

    A call may fail on the dropped connection (if the caller has not noticed the drop
    yet) and one on the cut connection; the round ends once the cut one has died.
    """

    def __init__(self, proxy: FaultProxy, cut: int, outcomes: list[str]) -> None:
        self.cut, self.outcomes = cut, outcomes
        self.answers = self.failures = 0
        proxy.cut_next(cut)
        proxy.drop_all()

    def answered(self, value: object, expected: object) -> None:
        assert value == expected
        self.answers += 1
        self.outcomes.append("answered")

    def failed(self, error: BaseException) -> bool:
        """Record ``error``; whether the cut connection has died now."""
        self.failures += 1
        self.outcomes.append(type(error).__name__)
        return self.answers > 0 or self.failures == 2
