"""One behaviour suite, run in memory (rabbitbus.testing) and against RabbitMQ.

Each test states what RabbitMQ does; the ``bus`` fixture runs it once with an
:class:`InMemoryBroker` and once with the real broker (this run's vhost, a
worker and an RPC server in threads), so the in-memory rules cannot drift.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pytest

import rabbitbus
from rabbitbus import rpc, topology
from rabbitbus.consuming import retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import ExchangeNotFound, NoRoute, Reject, RemoteError, Unroutable
from rabbitbus.messages import ReceivedMessage
from rabbitbus.testing import InMemoryBroker
from rabbitbus.topology import Binding, Exchange, Queue
from rabbitbus.transport import declare
from tests.broker import Broker, unique
from tests.consuming import drain
from tests.rpc_support import serving
from tests.testapp.rabbit import OutOfStock
from tests.workers import ThreadWorker, spec

pytestmark = pytest.mark.django_db(transaction=True)


class MemoryBus:
    """The behaviours, in memory."""

    def __init__(self) -> None:
        self.known = topology.Topology()
        self.memory = InMemoryBroker(topology=self.known, consumers=[])

    def declare(self, *entities: topology.Entity) -> None:
        self.known.add(*entities)

    def payloads(self, queue: str) -> list[Any]:
        return self.memory.queue(queue).payloads

    def consuming(self, consumer: ConsumerSpec) -> AbstractContextManager[Any]:
        self.known.add(*consumer.topology())
        self.memory.consumers[consumer.queue] = consumer
        return nullcontext()

    def wait_for(self, predicate: Callable[[], bool]) -> bool:
        """True once ``predicate`` holds, letting retry delays expire at once."""
        while not predicate():
            if not self.memory.release_retries():
                return False
        return True

    def serving(self, *names: str) -> AbstractContextManager[Any]:
        return nullcontext()


class RabbitBus:
    """The behaviours, on RabbitMQ (this run's vhost)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.declared = topology.Topology()

    def declare(self, *entities: topology.Entity) -> None:
        self.declared.add(*entities)
        with self.broker.channel() as channel:
            declare.declare(channel, self.declared)

    def payloads(self, queue: str) -> list[Any]:
        return [delivered.payload for delivered in drain(self.broker, queue, idle=0.3)]

    @contextmanager
    def consuming(self, consumer: ConsumerSpec) -> Iterator[None]:
        with ThreadWorker(consumer).start(self.broker):
            yield

    def wait_for(self, predicate: Callable[[], bool]) -> bool:
        return self.broker.wait_for(predicate, timeout=15)

    def serving(self, *names: str) -> AbstractContextManager[Any]:
        return serving(*names)

    def delete(self) -> None:
        with self.broker.channel() as channel:
            for queue in self.declared.queues:
                channel.queue_delete(queue)
            for exchange in self.declared.exchanges:
                channel.exchange_delete(exchange)


@pytest.fixture(params=["memory", "rabbitmq"])
def bus(request: pytest.FixtureRequest, broker: Broker) -> Iterator[Any]:
    if request.param == "memory":
        memory = MemoryBus()
        with memory.memory:
            yield memory
        return
    real = RabbitBus(broker)
    yield real
    real.delete()


def test_routing_by_exchange_type(bus: Any) -> None:
    x = unique("parity")
    bus.declare(
        Exchange(f"{x}.direct", type="direct"),
        Exchange(f"{x}.fanout", type="fanout"),
        Exchange(f"{x}.topic", type="topic"),
        Exchange(f"{x}.headers", type="headers"),
        *(Queue(f"{x}.{name}", type="classic") for name in ("d", "f1", "f2", "star", "hash", "h")),
        Binding(f"{x}.d", f"{x}.direct", "a.b"),
        Binding(f"{x}.f1", f"{x}.fanout", "ignored"),
        Binding(f"{x}.f2", f"{x}.fanout"),
        Binding(f"{x}.star", f"{x}.topic", "order.*"),
        Binding(f"{x}.hash", f"{x}.topic", "#.eu"),
        Binding(f"{x}.h", f"{x}.headers", "", {"x-match": "any", "fmt": "pdf", "lang": "fr"}),
    )
    sends = [
        (f"{x}.direct", "a.b", {}, "direct"),
        (f"{x}.direct", "a.c", {}, "no direct"),
        (f"{x}.fanout", "any", {}, "fan"),
        (f"{x}.topic", "order.placed", {}, "one word"),
        (f"{x}.topic", "order.placed.eu", {}, "three words"),
        (f"{x}.topic", "eu", {}, "zero words then eu"),
        (f"{x}.topic", "", {}, "empty key"),
        (f"{x}.headers", "", {"fmt": "pdf"}, "pdf"),
        (f"{x}.headers", "", {"fmt": "csv", "lang": "de"}, "csv"),
        ("", f"{x}.d", {}, "default exchange"),
    ]
    for exchange, key, headers, payload in sends:
        rabbitbus.publish(exchange, key, payload, headers=headers, mandatory=False)
    assert bus.payloads(f"{x}.d") == ["direct", "default exchange"]
    assert bus.payloads(f"{x}.f1") == ["fan"]
    assert bus.payloads(f"{x}.f2") == ["fan"]
    assert bus.payloads(f"{x}.star") == ["one word"]
    assert bus.payloads(f"{x}.hash") == ["three words", "zero words then eu"]
    assert bus.payloads(f"{x}.h") == ["pdf"]


def test_fanout_reaches_every_bound_queue(bus: Any) -> None:
    x = unique("parity")
    bus.declare(
        Exchange(f"{x}.fanout", type="fanout"),
        Queue(f"{x}.one", type="classic"),
        Queue(f"{x}.two", type="classic"),
        Binding(f"{x}.one", f"{x}.fanout", "a"),
        Binding(f"{x}.two", f"{x}.fanout", "b"),
    )
    rabbitbus.publish(f"{x}.fanout", "zzz", "fan")
    assert bus.payloads(f"{x}.one") == ["fan"]
    assert bus.payloads(f"{x}.two") == ["fan"]


def test_unroutable_mandatory_publish_raises(bus: Any) -> None:
    x = unique("parity")
    bus.declare(Exchange(f"{x}.topic", type="topic"))
    with pytest.raises(Unroutable):
        rabbitbus.publish(f"{x}.topic", "nobody.bound", {})
    rabbitbus.publish(f"{x}.topic", "nobody.bound", {}, mandatory=False)


def test_missing_exchange_raises_exchange_not_found(bus: Any) -> None:
    with pytest.raises(ExchangeNotFound):
        rabbitbus.publish(unique("parity.missing"), "key", {})


def test_a_failed_attempt_is_retried_then_acked(bus: Any) -> None:
    attempts: list[int] = []
    lock = threading.Lock()

    def flaky(message: ReceivedMessage) -> None:
        with lock:
            attempts.append(message.attempt)
        if message.attempt < 3:
            raise RuntimeError("not yet")

    queue = unique("parity.retry")
    with bus.consuming(spec(queue, flaky, attempts=5)):
        rabbitbus.publish("", queue, {"n": 1})
        assert bus.wait_for(lambda: attempts == [1, 2, 3])


def test_reject_dead_letters_with_the_reason(bus: Any) -> None:
    def refuse(message: ReceivedMessage) -> None:
        raise Reject("unknown sku")

    queue = unique("parity.reject")
    with bus.consuming(spec(queue, refuse)):
        rabbitbus.publish("", queue, {"sku": "X"})
        dead: list[Any] = []
        assert bus.wait_for(
            lambda: dead.extend(bus.payloads(retries.dead_letter_queue(queue))) or dead
        )
    assert dead == [{"sku": "X"}]


def test_exhausted_attempts_dead_letter(bus: Any) -> None:
    seen: list[int] = []

    def boom(message: ReceivedMessage) -> None:
        seen.append(message.attempt)
        raise ValueError("boom")

    queue = unique("parity.exhaust")
    with bus.consuming(spec(queue, boom, attempts=2)):
        rabbitbus.publish("", queue, "payload")
        dead: list[Any] = []
        assert bus.wait_for(
            lambda: dead.extend(bus.payloads(retries.dead_letter_queue(queue))) or dead
        )
    assert seen == [1, 2]
    assert dead == ["payload"]


def test_rpc_result_and_errors(bus: Any) -> None:
    with bus.serving("test.echo", "test.fail", "test.out_of_stock"):
        assert rpc.call("test.echo", 1, k="v", timeout=5) == {"args": [1], "kwargs": {"k": "v"}}
        with pytest.raises(OutOfStock, match="X is sold out"):
            rpc.call("test.out_of_stock", "X", timeout=5)
        with pytest.raises(RemoteError, match="nope"):
            rpc.call("test.fail", "nope", timeout=5)
    with pytest.raises(NoRoute):
        rpc.call(unique("parity.nobody"), timeout=5)
