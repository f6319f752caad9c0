"""Saves while the broker is down: one waits, the rest go straight to the outbox (issue 12.4)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import override_settings

import rabbitbus
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox.relay import Relay
from rabbitbus.transport import connections
from tests.broker import AMQP_PORT, Broker, ctl
from tests.consuming import drain_until
from tests.fault_proxy import FaultProxy
from tests.testapp.models import Order

pytestmark = [pytest.mark.fault, pytest.mark.django_db(transaction=True)]

SAVES = 200
ON_COMMIT_CONNECT_TIMEOUT = 1.0


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread name of every pika connect rabbitbus starts (a spy: the connect still runs)."""
    started: list[str] = []
    real = connections.pika_parameters

    def spy(*args: Any, **kwargs: Any) -> Any:
        started.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(connections, "pika_parameters", spy)
    return started


@pytest.fixture
def order_bridge(exchange: str) -> Iterator[None]:
    declared = rabbitbus.bridge(Order, exchange=exchange, routing_key="order.{event}")
    yield
    declared.disconnect()


@pytest.mark.usefixtures("order_bridge")
def test_saves_with_the_broker_stopped_wait_once_and_all_reach_the_queue(
    broker: Broker, queue: str, connects: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{django_settings.TEST_VHOST}"
    caplog.set_level(logging.INFO)
    with override_settings(RABBITBUS=outage_settings(url)):
        Order.objects.create(number="warm-up")  # an open connection, about to die
        ctl("stop_app")
        try:
            waits = save_while_down(connects)
        finally:
            ctl("start_app")
            ctl("await_startup")
        relay_everything(broker)
    assert len(drain_until(broker, queue, SAVES + 1)) == SAVES + 1
    lines = outage_lines(caplog)
    assert [line for line in lines if line[0] >= logging.WARNING] == [
        (logging.WARNING, "rabbitbus.transport.outage", "Connection 'default' lost")
    ]
    assert lines[-1][0:2] == (logging.INFO, "rabbitbus.transport.outage")
    assert lines[-1][2].startswith("Connection 'default' re-established")
    assert waits[0] < 30  # far below RECONNECT_TIMEOUT: a bound, not a speed


@pytest.mark.usefixtures("order_bridge")
def test_saves_with_the_broker_blackholed_wait_once_at_most_the_connect_timeout(
    broker: Broker, queue: str, connects: list[str], proxy: FaultProxy
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{django_settings.TEST_VHOST}"
    with override_settings(RABBITBUS=outage_settings(url)):
        Order.objects.create(number="warm-up")
        proxy.blackhole()  # the handshake hangs: only a timeout ends a connect
        connections.get_sync().discard()  # as a dropped idle connection would be
        try:
            waits = save_while_down(connects)
        finally:
            proxy.pass_through()
        relay_everything(broker)
    assert len(drain_until(broker, queue, SAVES + 1)) == SAVES + 1
    assert waits[0] < ON_COMMIT_CONNECT_TIMEOUT + 5  # a bound with slack, not a speed


def outage_settings(url: str) -> dict[str, Any]:
    # A long reconnect window: no save may wait it out.
    default = {"URL": url, "RECONNECT_TIMEOUT": 30, "CONNECTION_TIMEOUT": 3}
    outbox = {"ON_COMMIT_CONNECT_TIMEOUT": ON_COMMIT_CONNECT_TIMEOUT}
    return {"CONNECTIONS": {"default": default}, "OUTBOX": outbox}


def save_while_down(connects: list[str]) -> list[float]:
    """SAVES saves; asserts that only the first tried the broker and all went to the outbox."""
    connects.clear()
    waits = [timed_save(n) for n in range(SAVES)]
    assert OutboxMessage.objects.filter(status="pending").count() == SAVES
    # Only the first save tried the broker; the probe thread did the rest.
    assert connects.count(threading.current_thread().name) == 1
    ordered = sorted(waits)
    print(f"first save waited {waits[0]:.3f}s; p99 of {SAVES} saves {ordered[-3]:.4f}s")
    return waits


def relay_everything(broker: Broker) -> None:
    """Once the probe sees the broker back, relay every pending row."""
    outage = connections.outage_of(default_settings())
    assert broker.wait_for(lambda: not outage.down, 30), "the probe never saw the broker back"
    relay = Relay()
    while relay.run_once():
        pass


def timed_save(n: int) -> float:
    started = time.monotonic()
    with transaction.atomic():
        Order.objects.create(number=f"down-{n}")
    return time.monotonic() - started


def default_settings() -> Any:
    from rabbitbus.conf import settings

    return settings.connection("default")


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, str]]:
    """(level, logger, message up to its parenthesis) of every INFO-or-worse record from
    rabbitbus's outage or any driver, and every WARNING-or-worse record at all."""
    return [
        (record.levelno, record.name, record.getMessage().split(" (")[0])
        for record in caplog.records
        if record.levelno >= logging.WARNING
        or record.name.startswith(("rabbitbus.transport.outage", "pika", "aiormq", "aio_pika"))
    ]
