"""rabbitbus.testing.memory: routing to consumers, chains, retries, RPC, all in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import TestCase

import rabbitbus
from rabbitbus import outbox, rpc
from rabbitbus.consuming import registry, retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import ExchangeNotFound, NoRoute, Reject, RemoteError, Unroutable
from rabbitbus.messages import ReceivedMessage
from rabbitbus.testing import ChainTooDeep, InMemoryBroker
from rabbitbus.topology import Binding, Exchange, Queue, Topology, configured
from tests.broker import unique
from tests.consumer_support import Register, register, unregister
from tests.testapp.models import Effect
from tests.testapp.rabbit import OutOfStock
from tests.workers import spec

__all__ = ["register"]  # the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def memory(register: Register) -> Iterator[Any]:
    """``memory(*specs, **options)``: an installed broker running only ``specs``."""
    made: list[InMemoryBroker] = []

    def start(*specs: ConsumerSpec, **options: Any) -> InMemoryBroker:
        broker = InMemoryBroker(consumers=[spec.name for spec in specs], **options)
        made.append(broker.__enter__())
        return broker

    yield start
    for broker in reversed(made):
        broker.__exit__(None, None, None)


def test_published_message_reaches_the_bound_consumer(register: Register, memory: Any) -> None:
    seen: list[Any] = []
    spec = register(lambda message: seen.append(message.body), bindings=[("shop", "order.*")])
    broker = memory(spec)
    rabbitbus.publish("shop", "order.placed", {"id": 1})
    assert seen == [{"id": 1}]
    assert broker.queue(spec.queue).payloads == [{"id": 1}]
    assert [outcome.action for outcome in broker.outcomes(spec.name)] == ["acked"]
    broker.assert_published(routing_key="order.placed")


def test_consumers_not_chosen_do_not_run(register: Register, memory: Any) -> None:
    seen: list[Any] = []
    spec = register(seen.append)
    broker = memory()
    rabbitbus.publish("shop", "order.placed", {})
    assert seen == []
    assert len(broker.queue(spec.queue)) == 1  # its queue still took the message


def test_unroutable_mandatory_raises_like_the_broker(memory: Any) -> None:
    memory()
    with pytest.raises(Unroutable, match="'nobody.listens'"):
        rabbitbus.publish("shop", "nobody.listens", {})
    rabbitbus.publish("shop", "nobody.listens", {}, mandatory=False)


def test_missing_exchange_raises_exchange_not_found(memory: Any) -> None:
    memory()
    with pytest.raises(ExchangeNotFound):
        rabbitbus.publish("no.such.exchange", "key", {})
    result = rabbitbus.publish_many([rabbitbus.Message("no.such.exchange", "key")])
    assert isinstance(next(iter(result.failed.values())), ExchangeNotFound)


def test_a_handler_that_publishes_feeds_the_next(register: Register, memory: Any) -> None:
    seen: list[str] = []

    def first(message: ReceivedMessage) -> None:
        seen.append("first")
        rabbitbus.publish("shop", "stock.reserved", message.body)

    second = register(lambda message: seen.append("second"), bindings=[("shop", "stock.*")])
    broker = memory(register(first), second)
    rabbitbus.publish("shop", "order.placed", {"id": 2})
    assert seen == ["first", "second"]
    assert broker.routing_keys == ["order.placed", "stock.reserved"]


def test_a_publishing_loop_stops_at_max_depth(register: Register, memory: Any) -> None:
    def echo(message: ReceivedMessage) -> None:
        rabbitbus.publish("shop", "order.placed", message.body)

    broker = memory(register(echo), max_depth=3)
    with pytest.raises(ChainTooDeep, match="4 hops.*max_depth=3"):
        rabbitbus.publish("shop", "order.placed", {})
    assert len(broker.handled) == 3


def test_retry_waits_until_released_then_succeeds(register: Register, memory: Any) -> None:
    attempts: list[int] = []

    def flaky(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        if message.attempt == 1:
            raise RuntimeError("not yet")

    spec = register(flaky)
    broker = memory(spec)
    rabbitbus.publish("shop", "order.placed", {"id": 3})
    assert [o.action for o in broker.outcomes()] == ["retried"]
    assert broker.queue(retries.retry_queue(spec.queue, 1000)).payloads == [{"id": 3}]
    assert broker.release_retries() == 1
    assert attempts == [1, 2]
    assert [o.action for o in broker.outcomes()] == ["retried", "acked"]
    assert broker.handled[-1].message.routing_key == spec.queue


def test_reject_lands_in_the_dead_letter_queue(register: Register, memory: Any) -> None:
    def refuse(message: ReceivedMessage) -> None:
        raise Reject("unknown sku")

    spec = register(refuse)
    broker = memory(spec)
    rabbitbus.publish("shop", "order.placed", {"id": 4})
    [dead] = broker.dead_letters(spec.name)
    assert dead.payload == {"id": 4}
    assert dead.headers[retries.ORIGINAL_ROUTING_KEY] == "order.placed"
    assert "unknown sku" in dead.headers[retries.ERROR]


def test_async_publish_runs_async_consumers(register: Register, memory: Any) -> None:
    seen: list[Any] = []

    async def handle(message: ReceivedMessage) -> None:
        seen.append(message.body)
        if message.body == 1:
            await rabbitbus.apublish("shop", "order.placed", 2)

    memory(register(handle))
    asyncio.run(rabbitbus.apublish("shop", "order.placed", 1))
    assert seen == [1, 2]


def test_outbox_chain_runs_with_relay_outbox(register: Register, memory: Any) -> None:
    seen: list[str] = []

    def first(message: ReceivedMessage) -> None:
        outbox.enqueue("shop", "stock.reserved", message.body)

    second = register(lambda message: seen.append("second"), bindings=[("shop", "stock.*")])
    memory(register(first), second, relay_outbox=True)
    rabbitbus.publish("shop", "order.placed", {})
    assert seen == ["second"]


def test_headers_exchange_routing(register: Register, memory: Any) -> None:
    seen: list[Any] = []
    spec = register(lambda message: seen.append(message.body), bindings=())
    known = configured()
    known.add(
        Exchange("reports", type="headers"),
        Binding(spec.queue, "reports", "", {"x-match": "any", "format": "pdf", "kind": "x"}),
    )
    memory(spec, topology=known)
    rabbitbus.publish("reports", "", 1, headers={"format": "pdf"})
    rabbitbus.publish("reports", "", 2, headers={"format": "csv"}, mandatory=False)
    assert seen == [1]


def test_custom_topology_replaces_the_configured_one(memory: Any) -> None:
    known = Topology()
    known.add(Exchange("only", type="fanout"), Queue("sink"), Binding("sink", "only"))
    broker = memory(topology=known)
    rabbitbus.publish("only", "any.key", "x")
    assert broker.queue("sink").payloads == ["x"]
    with pytest.raises(ExchangeNotFound):
        rabbitbus.publish("shop", "order.placed", {})


def test_rpc_calls_registered_procedures(memory: Any) -> None:
    memory()
    assert rpc.call("test.echo", 1, a=2) == {"args": [1], "kwargs": {"a": 2}}
    assert asyncio.run(rpc.acall("test.aecho", "hi")) == "hi"
    assert asyncio.run(rpc.acall("test.echo_value", 3)) == 3


def test_rpc_errors_are_rebuilt_as_over_the_wire(memory: Any) -> None:
    memory()
    with pytest.raises(OutOfStock, match="X is sold out"):
        rpc.call("test.out_of_stock", "X")
    with pytest.raises(RemoteError, match="boom"):
        rpc.call("test.fail", "boom")
    with pytest.raises(NoRoute):
        rpc.call("no.such.procedure")


def test_rpc_stub_takes_precedence(memory: Any) -> None:
    broker = memory()
    broker.stub_rpc("test.echo", returns="stubbed")
    assert rpc.call("test.echo", 1) == "stubbed"
    broker.assert_published(kind="rpc", routing_key="rpc.test.echo")


class InMemoryBrokerInTestCase(TestCase):
    """Consumers run in the test's transaction: they see its rows, the test sees theirs."""

    def test_handler_writes_are_visible_to_the_test(self) -> None:
        def record(message: ReceivedMessage) -> None:
            Effect.objects.create(consumer="memory", message_id=message.message_id or "")

        consumer = spec(unique("memory.effects"), record, bindings=[("shop", "effect.*")])
        registry.add(consumer)
        self.addCleanup(unregister, consumer)
        self.enterContext(InMemoryBroker(consumers=[consumer]))
        message_id = rabbitbus.publish("shop", "effect.made", {})
        assert Effect.objects.filter(message_id=message_id).exists()
