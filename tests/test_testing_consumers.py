"""rabbitbus.testing.consumers: handlers run as the worker runs them, outcome reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import TestCase

from rabbitbus.consuming import registry, retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import ConfigurationError, Reject, Retry
from rabbitbus.messages import ReceivedMessage
from rabbitbus.testing import arun_consumer, run_consumer
from tests.consumer_support import Register, register, unregister
from tests.testapp.models import Effect

__all__ = ["register"]  # the fixture

pytestmark = pytest.mark.django_db


def test_acked_handler_receives_the_decoded_message(register: Register) -> None:
    seen: list[ReceivedMessage] = []
    spec = register(seen.append)
    outcome = run_consumer(spec.name, {"id": 1}, {"h": "v"}, message_id="m-1")
    assert outcome.acked and outcome.action == "acked"
    [message] = seen
    assert (message.body, message.headers, message.message_id) == ({"id": 1}, {"h": "v"}, "m-1")
    assert (message.exchange, message.routing_key, message.attempt) == ("shop", "order.placed", 1)


def test_handler_function_finds_its_consumer(register: Register) -> None:
    def handle(message: ReceivedMessage) -> None:
        pass

    register(handle)
    assert run_consumer(handle, {}).acked


def test_unknown_consumer_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Unknown consumer"):
        run_consumer("no.such.consumer", {})
    with pytest.raises(ConfigurationError, match="not a registered"):
        run_consumer(print, {})


def test_retry_reports_the_delay_tier(register: Register) -> None:
    def handle(message: ReceivedMessage) -> None:
        raise Retry(delay=3)

    spec = register(handle, attempts=5, backoff=(1.0, 8.0))
    outcome = run_consumer(spec.name, {})
    assert outcome.retried and outcome.delay == 4.0  # tiers 1, 2, 4, 8 s: the first >= 3
    assert outcome.copy is not None
    assert outcome.copy.routing_key == retries.retry_queue(spec.queue, 4000)
    assert outcome.copy.headers[retries.ATTEMPT] == 2


def test_failure_backs_off_then_dead_letters_on_the_last_attempt(register: Register) -> None:
    def handle(message: ReceivedMessage) -> None:
        raise ValueError("bad total")

    spec = register(handle, attempts=3, backoff=(1.0, 60.0))
    assert run_consumer(spec.name, {}, attempt=2).delay == 2.0
    last = run_consumer(spec.name, {}, attempt=3)
    assert last.dead_lettered and last.attempt == 3
    assert last.reason == "ValueError: bad total"
    assert last.copy is not None and last.copy.routing_key == spec.dead_letter_queue
    assert last.copy.headers[retries.ERROR] == "bad total"


def test_reject_dead_letters_at_once(register: Register) -> None:
    def handle(message: ReceivedMessage) -> None:
        raise Reject("unknown sku")

    outcome = run_consumer(register(handle).name, {})
    assert outcome.dead_lettered and "unknown sku" in (outcome.reason or "")


def test_undecodable_body_is_dead_lettered(register: Register) -> None:
    spec = register(lambda message: None)
    outcome = run_consumer(spec.name, body=b"{not json")
    assert outcome.dead_lettered and outcome.reason is not None
    assert outcome.reason.startswith("DecodeError")


def test_async_handler_runs(register: Register) -> None:
    async def handle(message: ReceivedMessage) -> None:
        await asyncio.sleep(0)
        raise Retry

    assert run_consumer(register(handle).name, {}).retried


def test_arun_consumer_from_async_code(register: Register) -> None:
    seen: list[Any] = []

    async def handle(message: ReceivedMessage) -> None:
        seen.append(message.body)

    spec = register(handle)
    assert asyncio.run(arun_consumer(spec.name, 5)).acked
    assert seen == [5]


def record_effect(message: ReceivedMessage) -> None:
    Effect.objects.create(consumer="testing", message_id=message.message_id or "")


class IdempotentConsumerInTestCase(TestCase):
    """In a ``TestCase``, the handler's writes and the inbox share the test's transaction."""

    def test_same_message_id_twice_is_a_duplicate(self) -> None:
        spec = ConsumerSpec(
            name="testing.record_effect", handler=record_effect, queue="testing.effects",
            idempotent=True,
        )  # fmt: skip
        registry.add(spec)
        self.addCleanup(unregister, spec)
        assert run_consumer(spec.name, {}, message_id="m-7").action == "acked"
        second = run_consumer(spec.name, {}, message_id="m-7")
        assert second.duplicate and second.acked
        assert Effect.objects.filter(message_id="m-7").count() == 1

    def test_def_handler_sees_rows_of_the_test(self) -> None:
        Effect.objects.create(consumer="setup", message_id="seed")
        seen: list[int] = []

        def count(message: ReceivedMessage) -> None:
            seen.append(Effect.objects.filter(message_id="seed").count())

        spec = ConsumerSpec(name="testing.count", handler=count, queue="testing.count")
        registry.add(spec)
        self.addCleanup(unregister, spec)
        assert run_consumer(spec.name, {}).acked
        assert seen == [1]


def test_arun_consumer_runs_a_def_handler_off_the_loop(register: Register) -> None:
    threads: list[bool] = []

    def handle(message: ReceivedMessage) -> None:
        try:
            asyncio.get_running_loop()
            threads.append(True)
        except RuntimeError:  # no loop here: Django would allow database access
            threads.append(False)

    assert asyncio.run(arun_consumer(register(handle).name, {})).acked
    assert threads == [False]


class AsyncIdempotentConsumerInTestCase(TestCase):
    """An idempotent ``async def`` handler runs under async_to_sync, as the worker runs it."""

    def test_same_message_id_twice_is_a_duplicate(self) -> None:
        async def record(message: ReceivedMessage) -> None:
            await Effect.objects.acreate(consumer="async", message_id=message.message_id or "")

        spec = ConsumerSpec(
            name="testing.arecord", handler=record, queue="testing.aeffects",
            idempotent=True, is_async=True,
        )  # fmt: skip
        registry.add(spec)
        self.addCleanup(unregister, spec)
        assert run_consumer(spec.name, {}, message_id="m-8").action == "acked"
        assert run_consumer(spec.name, {}, message_id="m-8").duplicate
        assert Effect.objects.filter(message_id="m-8").count() == 1


def test_a_many_handler_takes_the_message_in_a_list_of_one(register: Register) -> None:
    seen: list[list[ReceivedMessage]] = []
    spec = register(seen.append, transaction="batch", many=True, idempotent=True)
    assert run_consumer(spec.name, {"id": 1}, message_id="m-1").acked
    assert [[message.body for message in messages] for messages in seen] == [[{"id": 1}]]
    assert run_consumer(spec.name, {"id": 1}, message_id="m-1").duplicate
    assert len(seen) == 1
