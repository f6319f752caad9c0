"""Issue 12, items 5 and 7: ``call`` and ``acall`` keep their time bounds in every broker
state, fail alike, and say when a request never left.

The bound (README): a call returns or raises within its timeout plus
``CONSUMER_CHECK_LIMIT`` (1 s). Asserted with generous slack (``SLACK``): a bound,
not a speed. Broker states: down (``stop_app``: nothing listens), restarting (back
within the call's timeout), blocked by a memory or disk alarm, half-open (the fault
proxy's black hole). The node-wide ones are ``fault`` tests: run them against a
private node.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus import rpc
from rabbitbus.exceptions import BrokerConnectionError, BrokerUnavailable, RpcError, RpcTimeout
from rabbitbus.rpc import client as rpc_client
from rabbitbus.transport import connections
from tests.broker import Broker, ctl, rabbitbus_through
from tests.fault_proxy import FaultProxy
from tests.rpc_support import serving

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 2.0
BOUND = TIMEOUT + rpc_client.CONSUMER_CHECK_LIMIT
SLACK = 3.0
KINDS = ["call", "acall"]


def timed(
    kind: str, value: int, timeout: float = TIMEOUT, then: Callable[[], object] | None = None
) -> tuple[float, Any]:
    """``(seconds, result or exception)`` of ``test.aecho(value)`` by ``call`` or ``acall``.

    With ``then``: first one call that must be answered (the connection is up), then
    ``then()`` (the fault), then the timed call, on the same connection (one loop for
    ``acall``, closed at its end)."""

    def timed_call() -> tuple[float, Any]:
        started = time.monotonic()
        try:
            return time.monotonic() - started, rpc.call("test.aecho", value, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            return time.monotonic() - started, exc

    async def timed_acall() -> tuple[float, Any]:
        started = time.monotonic()
        try:
            outcome = await rpc.acall("test.aecho", value, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            outcome = exc
        return time.monotonic() - started, outcome

    async def acalls() -> tuple[float, Any]:
        try:
            if then is not None:
                assert await rpc.acall("test.aecho", 1, timeout=10) == 1
                then()
                await asyncio.sleep(0.5)  # the loop sees what happened while then() blocked it
            return await timed_acall()
        finally:
            await connections.aclose_all()

    if kind == "acall":
        return asyncio.run(acalls())
    if then is not None:
        assert rpc.call("test.aecho", 1, timeout=10) == 1
        then()
    return timed_call()


@contextlib.contextmanager
def broker_down() -> Iterator[None]:
    """The node's AMQP listener stopped (connections refused) inside the block."""
    ctl("stop_app")
    try:
        yield
    finally:
        ctl("start_app")
        ctl("await_startup")


def test_rpc_not_sent_is_exported_and_both_a_broker_and_an_rpc_error() -> None:
    assert rabbitbus.RpcNotSent is rpc.RpcNotSent
    assert issubclass(rabbitbus.RpcNotSent, BrokerUnavailable)
    assert issubclass(rabbitbus.RpcNotSent, RpcError)


@pytest.mark.fault
@pytest.mark.parametrize("kind", KINDS)
def test_with_the_broker_down_a_call_says_it_was_not_sent_within_its_timeout(
    kind: str, broker: Broker
) -> None:
    with serving("test.aecho"), contextlib.ExitStack() as faults:
        seconds, outcome = timed(kind, 2, then=lambda: faults.enter_context(broker_down()))
    assert isinstance(outcome, rabbitbus.RpcNotSent), repr(outcome)
    assert "not sent" in str(outcome) and "may or may not" not in str(outcome)
    assert seconds <= TIMEOUT + SLACK


@pytest.mark.fault
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_made_while_the_broker_restarts_keeps_its_bound(kind: str, broker: Broker) -> None:
    """Started with the broker down, which comes back meanwhile: answered, or a clear
    error, within the bound."""
    timeout = 6.0
    with serving("test.aecho"):
        ctl("stop_app")
        try:
            restart = threading.Timer(1.0, lambda: ctl("start_app"))
            restart.start()
            seconds, outcome = timed(kind, 3, timeout=timeout)
            restart.join(60)
        finally:
            ctl("start_app")
            ctl("await_startup")
    assert outcome == 3 or isinstance(outcome, RpcError | BrokerConnectionError), repr(outcome)
    assert seconds <= timeout + rpc_client.CONSUMER_CHECK_LIMIT + SLACK


@pytest.mark.fault
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alarm", ["memory_alarm", "disk_alarm"])
def test_under_a_resource_alarm_a_call_times_out_within_its_bound(
    kind: str, alarm: str, broker: Broker
) -> None:
    """The broker stops reading a connection that publishes during an alarm, so neither
    the request nor the "is a server consuming?" check gets an answer: RpcTimeout (not
    NoServer, not BrokerBlocked), after the timeout, not after the alarm."""
    with serving("test.aecho"), contextlib.ExitStack() as faults:
        raise_alarm = getattr(broker, alarm)
        seconds, outcome = timed(kind, 2, then=lambda: faults.enter_context(raise_alarm()))
    assert type(outcome) is RpcTimeout, repr(outcome)
    assert "alarm" in str(outcome)
    assert seconds <= BOUND + SLACK


@pytest.mark.parametrize("kind", KINDS)
def test_on_a_half_open_connection_a_call_times_out_within_its_bound(
    kind: str, proxy: FaultProxy
) -> None:
    server = rabbitbus_through(proxy.port)
    server["CONNECTIONS"]["default"] = server["CONNECTIONS"]["direct"]  # type: ignore[index]
    client = override_settings(RABBITBUS=rabbitbus_through(proxy.port))
    with override_settings(RABBITBUS=server), serving("test.aecho"), client:
        seconds, outcome = timed(kind, 2, then=proxy.blackhole)
    assert type(outcome) is RpcTimeout, repr(outcome)
    assert seconds <= BOUND + SLACK


@pytest.mark.timeout(40)  # the call's timeout is 60 s: only RECONNECT_TIMEOUT ends it in time
@pytest.mark.parametrize("kind", KINDS)
def test_after_a_lost_connection_a_call_gives_up_within_reconnect_timeout(
    kind: str, proxy: FaultProxy
) -> None:
    """Connected once, then the broker's port refuses: RpcNotSent once RECONNECT_TIMEOUT
    (1 s) is out, not after the call's own timeout, from ``call`` and ``acall`` alike."""
    server = rabbitbus_through(proxy.port)
    server["CONNECTIONS"]["default"] = server["CONNECTIONS"]["direct"]  # type: ignore[index]
    client = override_settings(RABBITBUS=rabbitbus_through(proxy.port, RECONNECT_TIMEOUT=1))

    with override_settings(RABBITBUS=server), serving("test.aecho"), client:
        _, outcome = timed(kind, 2, timeout=60, then=proxy.close)
    assert isinstance(outcome, rabbitbus.RpcNotSent), repr(outcome)
    assert "not reachable" in str(outcome) and "within its timeout" not in str(outcome)


@pytest.mark.parametrize("cut", ["drop_all", "reset_all"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_right_after_a_lost_connection_is_sent_on_a_new_one(
    kind: str, cut: str, proxy: FaultProxy
) -> None:
    """The caller's connection closed (FIN or RST) just after an answered call, and the
    broker still there: the next call, made at once, reopens and is answered, never lost
    with the old connection (``BrokerConnectionError``) or refused (``RpcNotSent``)."""
    server = rabbitbus_through(proxy.port)
    server["CONNECTIONS"]["default"] = server["CONNECTIONS"]["direct"]  # type: ignore[index]
    client = override_settings(RABBITBUS=rabbitbus_through(proxy.port))
    with override_settings(RABBITBUS=server), serving("test.aecho"), client:
        _, outcome = timed(kind, 2, timeout=10, then=getattr(proxy, cut))
    assert outcome == 2
