"""``@consumer(inline=True)``: a ``def`` handler run in the worker's event loop thread.

The process-level cases (SIGTERM, SIGKILL, a database outage, a redelivered id) run
both ways in tests/test_worker_process.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from django.db import connection

from rabbitbus import publish
from rabbitbus.consuming import registry, retries
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.messages import ReceivedMessage
from rabbitbus.runtime.threads import LoopThread
from tests.broker import Broker, unique
from tests.testapp.models import Effect
from tests.workers import ThreadWorker, spec


@pytest.mark.django_db(transaction=True)
def test_an_inline_handler_runs_in_the_loops_thread_and_applies_each_message_once(
    broker: Broker,
) -> None:
    queue, threads, in_transaction = unique("w.inline"), set(), []

    def handler(message: ReceivedMessage) -> None:
        threads.add(threading.current_thread())
        in_transaction.append(connection.in_atomic_block)
        Effect.objects.create(consumer="inline", message_id=message.message_id or "")

    consumer = spec(queue, handler, idempotent=True, inline=True, prefetch=20)
    with ThreadWorker(consumer).start(broker) as worker:
        ids = [publish("", queue, {"n": n}) for n in range(20)]
        publish("", queue, {"n": 0}, message_id=ids[0])  # the same message, again
        assert broker.wait_for(lambda: worker.stats()["processed"] == 21)
    assert threads == {worker.thread}  # the runtime's own thread, where its loop runs
    assert in_transaction == [True] * 20  # with its inbox row; the duplicate never ran
    assert sorted(Effect.objects.values_list("message_id", flat=True)) == sorted(ids)
    assert broker.queue_depth(queue) == 0


def test_an_inline_handler_that_fails_is_retried_then_dead_lettered(broker: Broker) -> None:
    queue, attempts = unique("w.inline.fail"), []

    def handler(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        raise ValueError("boom")

    with ThreadWorker(spec(queue, handler, inline=True, attempts=3)).start(broker):
        publish("", queue, {"x": 1})
        dead = retries.dead_letter_queue(queue)
        assert broker.wait_for(lambda: broker.queue_depth(dead) == 1)
    assert attempts == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_an_inline_batch_consumer_commits_its_batches(broker: Broker) -> None:
    queue = unique("w.inline.batch")

    def handler(messages: list[ReceivedMessage]) -> None:
        assert connection.in_atomic_block
        Effect.objects.bulk_create(
            Effect(consumer="batch", message_id=message.message_id or "") for message in messages
        )

    consumer = spec(
        queue, handler, idempotent=True, transaction="batch", many=True, inline=True, prefetch=50
    )
    with ThreadWorker(consumer).start(broker) as worker:
        ids = [publish("", queue, {"n": n}) for n in range(30)]
        assert broker.wait_for(lambda: worker.stats()["processed"] == 30)
    assert sorted(Effect.objects.values_list("message_id", flat=True)) == sorted(ids)


async def async_handler(message: ReceivedMessage) -> None:
    """An ``async def`` handler: it cannot be inline."""


@pytest.mark.parametrize(
    ("handler", "options", "says"),
    [
        (async_handler, {}, "inline=True is for def handlers"),
        (print, {"concurrency": 4}, "concurrency must be 1"),
    ],
    ids=["async-def", "concurrency"],
)
def test_an_inline_consumer_that_cannot_work_is_refused(
    handler: object, options: dict[str, int], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        registry.validate(spec("q", handler, inline=True, **options))


def test_loop_thread_runs_in_the_loops_thread_with_the_loop_hidden_meanwhile() -> None:
    runner = LoopThread("Consumer 'q'", warn_after=3600)

    def inside() -> tuple[int, bool]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return threading.get_ident(), False
        return threading.get_ident(), True

    async def main() -> tuple[tuple[int, bool], int, asyncio.AbstractEventLoop]:
        seen = await runner.run(inside)
        return seen, threading.get_ident(), asyncio.get_running_loop()  # the loop is back

    (thread, loop_seen), loop_thread, _ = asyncio.run(main())
    assert thread == loop_thread
    assert loop_seen is False  # so Django's ORM runs there


def test_loop_thread_passes_on_a_calls_exception_and_restores_the_loop() -> None:
    runner = LoopThread("Consumer 'q'", warn_after=3600)

    def fail() -> None:
        raise KeyError("boom")

    async def main() -> asyncio.AbstractEventLoop:
        with pytest.raises(KeyError):
            await runner.run(fail)
        return asyncio.get_running_loop()

    assert asyncio.run(main()) is not None


def test_loop_thread_warns_of_a_call_that_held_the_loop_too_long(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow, quick = LoopThread("Consumer 'slow'", warn_after=0.0), LoopThread("q", warn_after=3600)

    async def main() -> None:
        await slow.run(threading.Event().wait, 0.01)
        await quick.run(threading.Event().wait, 0.01)

    with caplog.at_level(logging.WARNING, logger="rabbitbus.runtime.threads"):
        asyncio.run(main())
    [record] = caplog.records
    assert "Consumer 'slow' held the worker's event loop" in record.getMessage()
    assert "inline=False" in record.getMessage()


def test_loop_thread_refuses_calls_once_shut_down() -> None:
    runner = LoopThread("Consumer 'q'", warn_after=3600)
    runner.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(runner.run(print))
