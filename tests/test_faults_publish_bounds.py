"""Every publishing call returns or raises within its documented bound in every broker
state, with the same error sync and async; a batch never throws its confirmations away.

The four calls (``publish``, ``publish_many``, ``apublish``, ``apublish_many``) run side
by side, each on a connection it opened before the fault, and start together once the
fault is in place. Bounds are asserted with generous slack: they catch a call that waits
out the outage, not a slow one. Marked ``fault``: run serially, last, on a private node.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus.exceptions import BrokerBlocked, BrokerUnavailable, PublishTimeout
from rabbitbus.messages import Message
from rabbitbus.publishing import PublishResult
from rabbitbus.transport import connections
from tests.broker import Broker, ctl, rabbitbus_through
from tests.consuming import drain
from tests.fault_proxy import FaultProxy

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

TIMEOUTS = {
    "PUBLISH_TIMEOUT": 3,
    "RECONNECT_TIMEOUT": 4,
    "CONNECTION_TIMEOUT": 2,
    "BLOCKED_CONNECTION_TIMEOUT": 6,
}
SLACK = 3
CALLS = ("publish", "publish_many", "apublish", "apublish_many")


@dataclass
class Outcomes:
    """Per call: seconds it took and the error type names it ended with (``ok`` if none)."""

    took: dict[str, float] = field(default_factory=dict)
    errors: dict[str, set[str]] = field(default_factory=dict)

    def record(self, call: str, started: float, outcome: object) -> None:
        self.took[call] = time.monotonic() - started
        if isinstance(outcome, PublishResult):
            names = {type(error).__name__ for error in outcome.failed.values()}
            self.errors[call] = names | ({"ok"} if outcome.confirmed else set())
        elif isinstance(outcome, BaseException):
            self.errors[call] = {type(outcome).__name__}
        else:
            self.errors[call] = {"ok"}


def batch(exchange: str, size: int = 50) -> list[Message]:
    return [Message(exchange, "k", {"n": n}, message_id=uuid.uuid4().hex) for n in range(size)]


def sync_caller(
    call: str, exchange: str, ready: threading.Barrier, go: threading.Event, outcomes: Outcomes
) -> None:
    rabbitbus.publish(exchange, "k", {"warm": True})  # this thread's connection, open
    ready.wait(30)
    go.wait(30)
    started = time.monotonic()
    try:
        if call == "publish":
            outcome: object = rabbitbus.publish(exchange, "k", {"n": 0})
        else:
            outcome = rabbitbus.publish_many(batch(exchange))
    except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
        outcome = exc
    outcomes.record(call, started, outcome)


async def async_callers(
    exchange: str, ready: threading.Barrier, go: threading.Event, outcomes: Outcomes
) -> None:
    await rabbitbus.apublish(exchange, "k", {"warm": True})  # this loop's connection, open
    await asyncio.to_thread(ready.wait, 30)
    await asyncio.to_thread(go.wait, 30)

    async def one(call: str) -> None:
        started = time.monotonic()
        try:
            if call == "apublish":
                outcome: object = await rabbitbus.apublish(exchange, "k", {"n": 0})
            else:
                outcome = await rabbitbus.apublish_many(batch(exchange))
        except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
            outcome = exc
        outcomes.record(call, started, outcome)

    try:
        await asyncio.gather(one("apublish"), one("apublish_many"))
    finally:
        await connections.aclose_all()


def run_calls(exchange: str, fault: Callable[[], None], during: Callable[[], None]) -> Outcomes:
    """Open the four calls' connections, inject ``fault``, start the calls together, run
    ``during`` while they go on, and return once they all have."""
    outcomes = Outcomes()
    ready, go = threading.Barrier(4), threading.Event()
    threads = [
        threading.Thread(target=sync_caller, args=(call, exchange, ready, go, outcomes))
        for call in ("publish", "publish_many")
    ]
    threads.append(
        threading.Thread(target=asyncio.run, args=(async_callers(exchange, ready, go, outcomes),))
    )
    for thread in threads:
        thread.start()
    try:
        ready.wait(30)
        fault()
        go.set()
        during()
    finally:
        go.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert set(outcomes.took) == set(CALLS), outcomes
    return outcomes


def assert_each(outcomes: Outcomes, bound: float, errors: set[str]) -> None:
    """Every call ended within ``bound`` (plus slack) with exactly ``errors``."""
    for call in CALLS:
        assert outcomes.took[call] < bound + SLACK, (call, outcomes)
        assert outcomes.errors[call] == errors, (call, outcomes)


def test_publishing_to_a_broker_gone_for_longer_than_the_window_raises_unavailable(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy
) -> None:
    """Down (the port refuses): ``BrokerUnavailable`` within ``RECONNECT_TIMEOUT``."""

    def fault() -> None:
        proxy.refuse(True)
        proxy.drop_all()

    with override_settings(RABBITBUS=rabbitbus_through(proxy.port, **TIMEOUTS)):
        outcomes = run_calls(exchange, fault, lambda: None)
    assert_each(outcomes, TIMEOUTS["RECONNECT_TIMEOUT"], {"BrokerUnavailable"})


def test_publishing_into_a_silent_network_times_out(
    broker: Broker, exchange: str, queue: str, proxy: FaultProxy
) -> None:
    """Half-open (the proxy's blackhole): ``PublishTimeout`` within ``PUBLISH_TIMEOUT``."""
    with override_settings(RABBITBUS=rabbitbus_through(proxy.port, **TIMEOUTS)):
        outcomes = run_calls(exchange, proxy.blackhole, lambda: None)
        proxy.drop_all()
    assert_each(outcomes, TIMEOUTS["PUBLISH_TIMEOUT"], {"PublishTimeout"})


@pytest.mark.parametrize("alarm", ["memory_alarm", "disk_alarm"])
def test_publishing_under_an_alarm_raises_blocked_sync_and_async(
    broker: Broker, exchange: str, queue: str, alarm: str
) -> None:
    """Blocked by an alarm: ``BrokerBlocked`` (not a bare timeout) within ``PUBLISH_TIMEOUT``."""
    with override_settings(RABBITBUS=direct(broker)), contextlib.ExitStack() as stack:
        outcomes = run_calls(
            exchange, lambda: stack.enter_context(getattr(broker, alarm)()), lambda: None
        )
    assert_each(outcomes, TIMEOUTS["PUBLISH_TIMEOUT"], {"BrokerBlocked"})


def test_publishing_across_a_restart_succeeds_within_the_window(
    broker: Broker, exchange: str, queue: str
) -> None:
    """Restarting (``stop_app`` then ``start_app``): every call waits for the node and
    succeeds, within ``RECONNECT_TIMEOUT`` (long enough for the restart here)."""
    window = 20

    def start_app() -> None:
        time.sleep(1)  # the calls start on a stopped node
        ctl("start_app")
        ctl("await_startup")

    with override_settings(RABBITBUS=direct(broker, RECONNECT_TIMEOUT=window)):
        try:
            outcomes = run_calls(exchange, lambda: ctl("stop_app"), start_app)
        finally:
            ctl("start_app")
    assert_each(outcomes, window, {"ok"})


def direct(broker: Broker, **options: object) -> dict[str, object]:
    return {"CONNECTIONS": {"default": {"URL": broker.url(), **TIMEOUTS, **options}}}


# -- a batch keeps its confirmations ---------------------------------------


def publish_batch(call: str, messages: list[Message]) -> PublishResult:
    if call == "publish_many":
        return rabbitbus.publish_many(messages)

    async def publish() -> PublishResult:
        try:
            return await rabbitbus.apublish_many(messages)
        finally:
            await connections.aclose_all()

    return asyncio.run(publish())


@pytest.mark.parametrize("when", ["before", "mid-batch"])
@pytest.mark.parametrize("call", ["publish_many", "apublish_many"])
def test_a_batch_cut_by_a_long_outage_returns_its_confirmations(
    broker: Broker, exchange: str, queue: str, call: str, when: str
) -> None:
    """The node is SIGKILLed before or during a batch and stays down past
    ``RECONNECT_TIMEOUT``: the call returns a ``PublishResult`` (it does not raise)
    whose confirmed ids are all stored, every other id failed with the error that
    stopped it."""
    messages = batch(exchange, 1 if when == "before" else 30_000)
    results: list[PublishResult | BaseException] = []

    def publish() -> None:
        try:
            results.append(publish_batch(call, messages))
        except BaseException as exc:  # noqa: BLE001 - a raise is the failure looked for
            results.append(exc)

    with override_settings(RABBITBUS=direct(broker, RECONNECT_TIMEOUT=3)):
        rabbitbus.publish(exchange, "k", {"warm": True})
        publisher = threading.Thread(target=publish)
        if when == "mid-batch":
            publisher.start()
            assert broker.wait_for(lambda: broker.queue_depth(queue) > 1, timeout=30)
        broker.kill()
        try:
            if when == "before":
                publisher.start()
            publisher.join(60)
        finally:
            broker.boot()
            broker.await_boot()
    (result,) = results
    assert isinstance(result, PublishResult), result
    ids = {message.message_id for message in messages}
    assert set(result.confirmed) | set(result.failed) == ids
    assert not set(result.confirmed) & set(result.failed)
    assert result.failed  # the outage cut the batch
    for error in result.failed.values():
        assert isinstance(error, (BrokerUnavailable, PublishTimeout, BrokerBlocked)), error
    if when == "mid-batch":
        assert result.confirmed  # confirmed before the kill, and kept
    stored = {message.message_id for message in drain(broker, queue, idle=1)}
    assert set(result.confirmed) <= stored
