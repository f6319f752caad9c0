"""Consumer semantics against the real broker, with the runtime in a thread."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import pika
import pytest
from django.db import OperationalError

from rabbitbus import publish
from rabbitbus.consuming import dispatch, retries
from rabbitbus.exceptions import Reject, Retry
from rabbitbus.messages import ReceivedMessage
from tests.broker import Broker, unique
from tests.workers import ThreadWorker, spec


class Recorder:
    """A handler that records what it saw and can fail on demand."""

    def __init__(self, fail: Any = None) -> None:
        self.seen: list[ReceivedMessage] = []
        self.times: list[float] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, message: ReceivedMessage) -> None:
        with self.lock:
            self.seen.append(message)
            self.times.append(time.monotonic())
        if self.fail is not None:
            self.fail(message)

    def ids(self) -> set[str | None]:
        return {message.message_id for message in self.seen}


def boom(message: ReceivedMessage) -> None:
    raise ValueError("boom")


def dead_letters(broker: Broker, queue: str) -> list[tuple[Any, bytes]]:
    """Every message in ``queue``'s DLQ as (properties, body), acked."""
    found = []
    with broker.channel() as channel:
        while True:
            method, properties, body = channel.basic_get(retries.dead_letter_queue(queue))
            if method is None:
                return found
            channel.basic_ack(method.delivery_tag)
            found.append((properties, body))


def raw_publish(broker: Broker, queue: str, body: bytes, **properties: Any) -> None:
    with broker.channel() as channel:
        channel.basic_publish("", queue, body, pika.BasicProperties(**properties))


def test_a_successful_message_is_acked(broker: Broker) -> None:
    queue, handler = unique("w.ok"), Recorder()
    with ThreadWorker(spec(queue, handler)).start(broker) as worker:
        ids = [publish("", queue, {"n": n}) for n in range(5)]
        assert broker.wait_for(lambda: len(handler.seen) == 5)
        assert broker.wait_for(lambda: worker.stats()["processed"] == 5)
    assert handler.ids() == set(ids)
    assert broker.queue_depth(queue) == 0  # nothing left ready, and after close nothing unacked


def test_the_handler_sees_body_headers_origin_and_attempt(broker: Broker, exchange: str) -> None:
    queue, handler = unique("w.msg"), Recorder()
    consumer = spec(queue, handler, bindings=[(exchange, "order.*")])
    with ThreadWorker(consumer).start(broker):
        message_id = publish(exchange, "order.placed", {"id": 7}, headers={"h": "v"})
        assert broker.wait_for(lambda: handler.seen)
    message = handler.seen[0]
    assert (message.body, message.headers["h"], message.message_id) == ({"id": 7}, "v", message_id)
    assert (message.exchange, message.routing_key, message.attempt) == (exchange, "order.placed", 1)
    assert message.redelivered is False


def test_a_failing_handler_is_retried_with_growing_delays_then_dead_lettered(
    broker: Broker, exchange: str
) -> None:
    queue, handler = unique("w.fail"), Recorder(boom)
    consumer = spec(queue, handler, bindings=[(exchange, "k")], attempts=3, backoff=(0.3, 5))
    with ThreadWorker(consumer).start(broker):
        publish(exchange, "k", {"x": 1})
        assert broker.wait_for(lambda: broker.queue_depth(retries.dead_letter_queue(queue)) == 1)
    assert [message.attempt for message in handler.seen] == [1, 2, 3]
    first_gap, second_gap = (b - a for a, b in zip(handler.times, handler.times[1:], strict=False))
    assert first_gap >= 0.3 and second_gap >= 0.6  # TTLs of 300 ms, then 600 ms
    [(properties, body)] = dead_letters(broker, queue)
    assert body == b'{"x":1}'
    headers = properties.headers
    assert headers[retries.ERROR_CLASS] == "ValueError"
    assert headers[retries.ERROR] == "boom"
    assert headers[retries.ATTEMPTS] == 3
    assert headers[retries.ORIGINAL_EXCHANGE] == exchange
    assert headers[retries.ORIGINAL_ROUTING_KEY] == "k"
    assert handler.seen[-1].routing_key == "k"  # the retried copy still says where it came from


def test_reject_dead_letters_at_once(broker: Broker) -> None:
    def reject(message: ReceivedMessage) -> None:
        raise Reject("not for us")

    queue, handler = unique("w.reject"), Recorder(reject)
    with ThreadWorker(spec(queue, handler, attempts=5)).start(broker):
        publish("", queue, {})
        assert broker.wait_for(lambda: broker.queue_depth(retries.dead_letter_queue(queue)) == 1)
    assert len(handler.seen) == 1
    [(properties, _)] = dead_letters(broker, queue)
    assert properties.headers[retries.ERROR_CLASS] == "Reject"
    assert properties.headers[retries.ERROR] == "not for us"


def test_retry_with_a_delay_comes_back_after_it(broker: Broker) -> None:
    def retry_once(message: ReceivedMessage) -> None:
        if message.attempt == 1:
            raise Retry(delay=0.5)

    queue, handler = unique("w.retry"), Recorder(retry_once)
    consumer = spec(queue, handler, attempts=5, backoff=(0.1, 1))  # tiers 0.1, 0.2, 0.4, 0.8 s
    with ThreadWorker(consumer).start(broker) as worker:
        publish("", queue, {})
        assert broker.wait_for(lambda: worker.stats()["processed"] == 1)
    assert [message.attempt for message in handler.seen] == [1, 2]
    assert handler.times[1] - handler.times[0] >= 0.5  # waited in the 0.8 s tier
    assert broker.queue_depth(retries.dead_letter_queue(queue)) == 0


BAD_BODIES = {
    "bad json": (b"{not json", {"content_type": "application/json"}),
    "empty": (b"", {"content_type": "application/json"}),
    "not utf-8": (b"\xff\xfe\x00", {"content_type": "application/json"}),
    "wrong content type": (b"\x80\x04K\x01.", {"content_type": "application/python-pickle"}),
    "compressed": (
        b"\x1f\x8b\x08\x00",
        {"content_type": "application/json", "content_encoding": "gzip"},
    ),
}


@pytest.mark.parametrize("kind", BAD_BODIES)
def test_an_undecodable_body_is_dead_lettered_on_first_delivery(broker: Broker, kind: str) -> None:
    body, properties = BAD_BODIES[kind]
    queue, handler = unique("w.bad"), Recorder()
    with ThreadWorker(spec(queue, handler)).start(broker) as worker:
        raw_publish(broker, queue, body, message_id="bad-1", **properties)
        assert broker.wait_for(lambda: broker.queue_depth(retries.dead_letter_queue(queue)) == 1)
        publish("", queue, {"good": True})
        assert broker.wait_for(lambda: worker.stats()["processed"] == 1)  # still alive
    assert [message.body for message in handler.seen] == [{"good": True}]
    [(dead, dead_body)] = dead_letters(broker, queue)
    assert dead_body == body
    assert dead.headers[retries.ERROR_CLASS] == "DecodeError"
    assert dead.headers[retries.ATTEMPTS] == 1
    assert not dead.headers.get("x-death")  # parked by the worker, never requeued


@pytest.mark.parametrize(
    "forged", ["abc", -5, 2**62, str(2**70)]
)  # AMQP cannot carry 2**70 as an int
def test_a_forged_attempt_header_cannot_make_retries_endless(broker: Broker, forged: Any) -> None:
    queue, handler = unique("w.forged"), Recorder(boom)
    with ThreadWorker(spec(queue, handler, attempts=2)).start(broker):
        publish("", queue, {}, headers={retries.ATTEMPT: forged})
        assert broker.wait_for(lambda: broker.queue_depth(retries.dead_letter_queue(queue)) == 1)
    assert 1 <= len(handler.seen) <= 2


def test_one_poison_message_among_a_thousand_good_ones(broker: Broker) -> None:
    def poison(message: ReceivedMessage) -> None:
        if message.body.get("poison"):
            raise RuntimeError("poison")

    queue, handler = unique("w.poison"), Recorder(poison)
    consumer = spec(queue, handler, attempts=3, prefetch=50, concurrency=4)
    with ThreadWorker(consumer).start(broker) as worker:
        from rabbitbus import publish_many
        from rabbitbus.messages import Message

        batch = [Message("", queue, {"n": n, "poison": n == 500}) for n in range(1001)]
        result = publish_many(batch)
        assert result.ok
        assert broker.wait_for(lambda: worker.stats()["processed"] == 1000, timeout=60)
        assert broker.wait_for(lambda: broker.queue_depth(retries.dead_letter_queue(queue)) == 1)
    poison_attempts = [m.attempt for m in handler.seen if m.body["poison"]]
    assert poison_attempts == [1, 2, 3]
    assert len({m.message_id for m in handler.seen if not m.body["poison"]}) == 1000


@pytest.mark.django_db(transaction=True)
def test_a_database_error_with_the_database_up_counts_as_the_handlers_failure(
    broker: Broker,
) -> None:
    """Only an unreachable database holds messages (test_worker_process has that case)."""

    def deadlock(message: ReceivedMessage) -> None:
        raise OperationalError("deadlock detected")

    queue, handler = unique("w.dberror"), Recorder(deadlock)
    with ThreadWorker(spec(queue, handler, attempts=2)).start(broker):
        publish("", queue, {})
        dead = retries.dead_letter_queue(queue)
        assert broker.wait_for(lambda: broker.queue_depth(dead) == 1, timeout=20)
    assert [m.attempt for m in handler.seen] == [1, 2]


def test_sync_and_async_handlers_side_by_side(broker: Broker) -> None:
    sync_threads: list[str] = []
    async_loops: list[bool] = []

    def sync_handler(message: ReceivedMessage) -> None:
        sync_threads.append(threading.current_thread().name)

    async def async_handler(message: ReceivedMessage) -> None:
        await asyncio.sleep(0)
        async_loops.append(asyncio.get_running_loop().is_running())

    sync_queue, async_queue = unique("w.sync"), unique("w.async")
    workers = ThreadWorker(spec(sync_queue, sync_handler), spec(async_queue, async_handler))
    with workers.start(broker):
        for _ in range(3):
            publish("", sync_queue, {})
            publish("", async_queue, {})
        assert broker.wait_for(lambda: len(sync_threads) == 3 and len(async_loops) == 3)
    assert all(name.startswith(f"rabbitbus-{sync_queue}") for name in sync_threads)
    assert async_loops == [True] * 3


def test_sync_handlers_close_old_db_connections_before_and_after(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(dispatch, "close_old_connections", lambda: events.append("close"))

    queue = unique("w.db")
    with ThreadWorker(spec(queue, lambda message: events.append("handler"))).start(broker) as w:
        publish("", queue, {})
        assert broker.wait_for(lambda: w.stats()["processed"] == 1)
    assert events == ["close", "handler", "close"]


def test_consumers_come_back_after_all_connections_are_closed(broker: Broker) -> None:
    seen: set[str | None] = set()

    async def slowish(message: ReceivedMessage) -> None:
        await asyncio.sleep(0.002)
        seen.add(message.message_id)

    queue = unique("w.reconnect")
    with ThreadWorker(spec(queue, slowish, prefetch=20, concurrency=10)).start(broker) as worker:
        from rabbitbus import publish_many
        from rabbitbus.messages import Message

        ids = set(publish_many([Message("", queue, {"n": n}) for n in range(2000)]).confirmed)
        assert broker.wait_for(lambda: len(seen) >= 200, timeout=30)
        broker.close_all_connections()
        assert broker.wait_for(lambda: seen >= ids, timeout=60)
        assert broker.wait_for(lambda: broker.consumers(queue) == 1, timeout=20)
        assert worker.runtime is not None and worker.runtime.reconnects >= 1
    assert broker.queue_depth(queue) == 0


def test_workers_announce_their_stats_on_the_events_exchange(broker: Broker) -> None:
    from rabbitbus.monitoring import events_exchange

    queue, handler = unique("w.stats"), Recorder()
    with broker.channel() as channel:
        channel.exchange_declare(events_exchange(), "topic", durable=True)
        listener = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(listener, events_exchange(), "worker.stats")
        with ThreadWorker(spec(queue, handler)).start(broker):
            publish("", queue, {"n": 1})
            assert broker.wait_for(lambda: len(handler.seen) == 1)
            found: list[dict[str, Any]] = []

            def announced() -> bool:
                method, _properties, body = channel.basic_get(listener, auto_ack=True)
                if method is not None:
                    found.append(json.loads(body))
                return any(event["processed"] == 1 for event in found)

            assert broker.wait_for(announced, timeout=20)
    assert found[-1]["worker"].endswith(f":{os.getpid()}")


def test_a_queue_deleted_under_the_worker_is_redeclared_and_consumed_again(
    broker: Broker,
) -> None:
    queue, handler = unique("w.deleted"), Recorder()
    with ThreadWorker(spec(queue, handler)).start(broker) as worker:
        publish("", queue, {"n": 1})
        assert broker.wait_for(lambda: len(handler.seen) == 1)
        with broker.channel() as channel:
            channel.queue_delete(queue)
        assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, timeout=20)
        message_id = publish("", queue, {"n": 2})
        assert broker.wait_for(lambda: message_id in handler.ids(), timeout=20)
        assert worker.runtime is not None and worker.runtime.reconnects == 0  # same connection


def test_a_channel_closed_by_the_broker_is_reopened_on_the_same_connection(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    queue, handler = unique("w.channel"), Recorder()
    with ThreadWorker(spec(queue, handler)).start(broker) as worker:
        assert worker.runtime is not None
        service = worker.runtime.services[0]
        channel = service.channel  # type: ignore[attr-defined]
        # An ack of a tag never delivered: the broker closes the channel (406).
        asyncio.run_coroutine_threadsafe(channel.basic_ack(10**6), worker.loop).result(5)
        assert broker.wait_for(lambda: service.channel is not channel, timeout=20)  # type: ignore[attr-defined]
        message_id = publish("", queue, {"n": 1})
        assert broker.wait_for(lambda: message_id in handler.ids(), timeout=20)
        assert worker.runtime.reconnects == 0
    [warning] = [r.getMessage() for r in caplog.records if "lost its channel" in r.getMessage()]
    assert "PRECONDITION_FAILED - unknown delivery tag" in warning


def test_a_slow_handler_does_not_hold_back_the_acks_of_faster_ones(broker: Broker) -> None:
    release = threading.Event()

    def handler(message: ReceivedMessage) -> None:
        if message.body["slow"]:
            release.wait(30)

    queue = unique("w.acks")
    with ThreadWorker(spec(queue, handler, prefetch=10, concurrency=2)).start(broker) as worker:
        publish("", queue, {"slow": True})
        for _ in range(5):
            publish("", queue, {"slow": False})
        assert broker.wait_for(lambda: worker.stats()["processed"] == 5, timeout=20)
        assert broker.wait_for(lambda: broker.unacked(queue) == 1, timeout=20)
        release.set()
        assert broker.wait_for(lambda: broker.unacked(queue) == 0, timeout=20)


def test_the_worker_reads_small_deliveries_off_the_socket(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``FAST_PATHS`` on, the tap reads a consumer's deliveries (aiormq's consumer
    sees none); off, aiormq reads them all. Either way the handler sees the same."""
    from rabbitbus.conf import settings
    from rabbitbus.consuming.worker import ConsumerService

    through_aiormq: list[str] = []
    on_message = ConsumerService.on_message

    async def counted(self: ConsumerService, acks: Any, message: Any) -> None:
        through_aiormq.append(message.header.properties.message_id)
        await on_message(self, acks, message)

    monkeypatch.setattr(ConsumerService, "on_message", counted)
    queue, handler = unique("w.tap"), Recorder()
    with ThreadWorker(spec(queue, handler)).start(broker):
        ids = [publish("", queue, {"n": n}, headers={"n": n}) for n in range(20)]
        assert broker.wait_for(lambda: len(handler.seen) == 20)
    assert handler.ids() == set(ids)
    assert [message.headers["n"] for message in handler.seen] == list(range(20))
    assert len(through_aiormq) == (0 if settings.FAST_PATHS else 20)


def test_deliveries_stay_in_order_around_one_the_tap_leaves_to_aiormq(broker: Broker) -> None:
    """A delivery over the tap's 256 KiB goes to aiormq, which hands it over a little later
    than the tap would the next ones: the tap then lets go of the channel, so a consumer
    handling one message at a time still sees them in the order they were queued."""
    queue, go = unique("w.order"), threading.Event()
    handler = Recorder(fail=lambda message: go.wait(10))  # the first holds the rest back
    big = {"pad": "x" * 300_000}
    payloads = [{"n": 0}, {"n": 1, **big}, *({"n": n} for n in range(2, 30))]
    with ThreadWorker(spec(queue, handler, concurrency=1, prefetch=50)).start(broker):
        for payload in payloads:
            publish("", queue, payload)
        go.set()
        assert broker.wait_for(lambda: len(handler.seen) == len(payloads))
    assert [message.body["n"] for message in handler.seen] == list(range(30))
