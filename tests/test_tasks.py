"""rabbitbus.tasks: enqueue, run and results through a real broker and a worker."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from rabbitbus import publish
from rabbitbus.exceptions import TaskArgumentsError, Unroutable
from rabbitbus.models import TaskRecord
from rabbitbus.tasks import options as task_options
from rabbitbus.tasks import results
from rabbitbus.tasks.compat import InvalidTask, TaskResultDoesNotExist, TaskResultStatus, task
from tests.broker import Broker
from tests.tasks_support import finished, tasks_backend, thread_worker
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_sync_task_round_trip(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = tasks.add.enqueue(2, 3)
        assert backend.get_result(result.id).status == TaskResultStatus.READY
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at


async def test_an_async_task_round_trip_through_aenqueue(broker: Broker) -> None:
    with tasks_backend(broker, RECORD_ENQUEUED=False) as backend:
        result = await tasks.async_add.aenqueue(4, 5)
        worker = thread_worker(backend)
        await asyncio.to_thread(worker.start, broker)
        try:
            await asyncio.to_thread(finished, result, broker)
            again = await tasks.async_add.aget_result(result.id)
        finally:
            await asyncio.to_thread(worker.stop)
    assert again.status == TaskResultStatus.SUCCESSFUL
    assert again.return_value == 9


async def test_aenqueue_records_the_ready_row_before_publishing(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = await tasks.add.aenqueue(1, 2)
        stored = await backend.aget_result(result.id)
        assert stored.status == TaskResultStatus.READY
        assert await asyncio.to_thread(broker.queue_depth, backend.options_.queue("default")) == 1


async def test_concurrent_aenqueue_calls_write_their_ready_rows_together(broker: Broker) -> None:
    """Fifty ``aenqueue()`` at once: each has its READY row and its message, and the rows
    went in fewer writes than calls (those asked for during a write wait for the next)."""
    with tasks_backend(broker) as backend:
        groups: list[int] = []
        write = backend._record

        def counted(pending: Any) -> list[bool]:
            groups.append(len(pending))
            return write(pending)

        backend._record = counted  # type: ignore[method-assign]
        queued = await asyncio.gather(*(tasks.add.aenqueue(n, n) for n in range(50)))
        stored = [await backend.aget_result(result.id) for result in queued]
        depth = await asyncio.to_thread(broker.queue_depth, backend.options_.queue("default"))
    assert {result.status for result in stored} == {TaskResultStatus.READY}
    assert depth == 50
    assert sum(groups) == 50 and len(groups) < 50


async def test_a_failed_ready_row_write_fails_its_calls_and_publishes_nothing(
    broker: Broker,
) -> None:
    with tasks_backend(broker) as backend:

        def broken(pending: Any) -> list[bool]:
            raise ConnectionError("the database is gone")

        backend._record = broken  # type: ignore[method-assign]
        outcomes = await asyncio.gather(
            *(tasks.add.aenqueue(n, n) for n in range(10)), return_exceptions=True
        )
        depth = await asyncio.to_thread(broker.queue_depth, backend.options_.queue("default"))
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert depth == 0


def test_a_task_the_broker_refuses_leaves_no_ready_row(broker: Broker) -> None:
    """``enqueue()`` raises when its message is not routed (its queue deleted here), and
    shows no task waiting that was never sent."""
    with tasks_backend(broker) as backend:
        with broker.channel() as channel:
            channel.queue_delete(backend.options_.queue("default"))
        with pytest.raises(Unroutable):
            tasks.add.enqueue(1, 2)
        assert not TaskRecord.objects.exists()


def test_enqueue_returns_once_confirmed_though_its_ready_row_could_not_be_written(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """``enqueue()`` writes the ``READY`` row while the broker confirms. A row that cannot
    be written (the database gone) does not undo a task the broker has: ``enqueue()``
    returns (a caller told it failed would enqueue it again), warns, and the worker's row
    is the task's first."""
    with tasks_backend(broker) as backend:

        def broken(jobs: Any) -> None:
            raise OperationalError("the database is gone")

        backend._record_ready = broken  # type: ignore[method-assign]
        with caplog.at_level("WARNING", logger="rabbitbus.tasks.backend"):
            result = tasks.add.enqueue(2, 2)
        assert not TaskRecord.objects.filter(id=result.id).exists()
        assert broker.queue_depth(backend.options_.queue("default")) == 1
        assert f"Task {result.id} is enqueued, but its READY row" in caplog.text
        del backend._record_ready
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.return_value == 4


def test_a_ready_row_never_replaces_the_row_a_worker_wrote_first(broker: Broker) -> None:
    """The worker can start a task before the enqueue's ``READY`` row lands (the row is
    written while the broker confirms): the late row is skipped, not written over it."""
    with tasks_backend(broker) as backend:
        result, job = backend._prepare(tasks.add, (1, 1), {})
        running = results.record_of(job)
        running.status = TaskRecord.Status.RUNNING
        running.save(force_insert=True)
        backend._record_ready([job])
        assert backend.get_result(result.id).status == TaskResultStatus.RUNNING


async def test_an_async_task_the_broker_refuses_leaves_no_ready_row(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        with broker.channel() as channel:
            channel.queue_delete(backend.options_.queue("default"))
        with pytest.raises(Unroutable):
            await tasks.add.aenqueue(1, 2)
        assert not await TaskRecord.objects.aexists()


def test_a_task_taking_context_sees_its_attempt_and_id(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = tasks.attempt_and_id.enqueue()
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.return_value == {"attempt": 1, "id": result.id}


def test_each_queue_name_has_its_own_queue(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = tasks.noop.using(queue_name="other").enqueue()
        assert broker.queue_depth(backend.options_.queue("other")) == 1
        with thread_worker(backend, "other").start(broker):
            finished(result, broker)
    assert TaskRecord.objects.get(id=result.id).queue_name == "other"


def test_a_rolled_back_transaction_never_runs_its_task(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        with pytest.raises(RuntimeError), transaction.atomic():
            doomed = tasks.add.enqueue(1, 1)
            raise RuntimeError("roll back")
        later = tasks.add.enqueue(2, 2)
        with thread_worker(backend, concurrency=1).start(broker):
            finished(later, broker)
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(doomed.id)
        assert broker.queue_depth(backend.options_.queue("default")) == 0


def test_inside_a_transaction_the_task_is_published_on_commit(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        queue = backend.options_.queue("default")
        with transaction.atomic():
            tasks.noop.enqueue()
            assert broker.queue_depth(queue) == 0
        assert broker.queue_depth(queue) == 1


def test_the_outbox_delivery_writes_a_row_and_publishes_nothing(broker: Broker) -> None:
    from rabbitbus.models import OutboxMessage

    with tasks_backend(broker, DELIVERY="outbox") as backend:
        with transaction.atomic():
            result = tasks.noop.enqueue()
        row = OutboxMessage.objects.get(message_id=result.id)
        assert row.routing_key == backend.options_.queue("default")
        assert broker.queue_depth(row.routing_key) == 0


def test_an_outbox_task_runs_once_the_relay_publishes_it(broker: Broker) -> None:
    from rabbitbus.outbox.relay import Relay

    with tasks_backend(broker, DELIVERY="outbox") as backend:
        result = tasks.add.enqueue(20, 22)
        assert Relay().run_once() == 1
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.return_value == 42


def test_a_deferred_task_runs_no_earlier_than_run_after(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        run_after = timezone.now() + timedelta(seconds=2.5)
        result = tasks.clock.using(run_after=run_after).enqueue()
        tier = task_options.delay_queue(backend.options_.queue("default"), 1000)
        assert broker.queue_depth(tier) == 1  # waiting in the broker, not in a worker
        with thread_worker(backend).start(broker):
            finished(result, broker, timeout=30)
    assert result.return_value >= run_after.timestamp()
    assert result.started_at >= run_after


def test_delay_tiers_never_overshoot() -> None:
    assert task_options.delay_tier(0.2) == 1000
    assert task_options.delay_tier(5) == 4000
    assert task_options.delay_tier(63.9) == 16000
    assert task_options.delay_tier(10**9) == task_options.DELAY_TIERS_MS[-1]


def test_a_raising_task_is_failed_with_its_exception_and_traceback(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = tasks.fail.enqueue("boom")
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError
    assert "ValueError: boom" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_a_return_value_that_is_not_json_fails_the_task(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        result = tasks.returns_object.enqueue()
        with thread_worker(backend).start(broker):
            finished(result, broker)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path.endswith("NotJSONReturnValue")
    assert "cannot be stored as JSON" in result.errors[0].traceback


def test_arguments_that_are_not_json_are_refused_at_enqueue(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        with pytest.raises(TaskArgumentsError, match="tests.testapp.tasks.add must be JSON"):
            tasks.add.enqueue(object(), 1)
        with pytest.raises(TypeError):  # also a TypeError, as Django's own backends raise
            tasks.add.enqueue(1, b=float("nan"))
        assert broker.queue_depth(backend.options_.queue("default")) == 0
        assert not TaskRecord.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queue_name": "missing"}, "Queue 'missing' is not valid"),
        ({"priority": 10}, "does not support setting priority"),
        ({"run_after": timezone.now().replace(tzinfo=None)}, "must be an aware datetime"),
    ],
)
def test_invalid_tasks_raise_invalid_task(broker: Broker, change: Any, message: str) -> None:
    with tasks_backend(broker), pytest.raises(InvalidTask, match=message):
        tasks.add.using(**change).enqueue(1, 2)


def test_a_task_not_defined_at_module_level_is_invalid(broker: Broker) -> None:
    def local() -> None:
        pass

    with tasks_backend(broker), pytest.raises(InvalidTask, match="module level"):
        task(local)


def test_priorities_need_max_priority_and_then_run_highest_first(broker: Broker) -> None:
    with tasks_backend(broker, MAX_PRIORITY=10) as backend:
        low = tasks.clock.using(priority=-50).enqueue()
        high = tasks.clock.using(priority=90).enqueue()
        with thread_worker(backend, concurrency=1).start(broker):
            finished(low, broker)
            finished(high, broker)
    assert high.started_at <= low.started_at


def test_a_message_that_is_no_task_is_dead_lettered(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        queue = backend.options_.queue("default")
        publish("", queue, {"not": "a task"})
        with thread_worker(backend).start(broker):
            assert broker.wait_for(lambda: broker.queue_depth(f"{queue}.dlq") == 1, timeout=20)


def test_a_task_that_cannot_be_imported_is_failed_and_dead_lettered(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        queue = backend.options_.queue("default")
        result = tasks.noop.enqueue()
        record = TaskRecord.objects.get(id=result.id)
        body = {**_body(record), "task": "tests.testapp.tasks.gone"}
        publish("", queue, body, message_id="gone-1")
        with thread_worker(backend).start(broker):
            assert broker.wait_for(lambda: broker.queue_depth(f"{queue}.dlq") == 1, timeout=20)
            assert broker.wait_for(lambda: TaskRecord.objects.filter(id="gone-1").exists())
        recorded = backend.get_result("gone-1")  # the row, not the missing task's ImportError
    gone = TaskRecord.objects.get(id="gone-1")
    assert gone.status == TaskRecord.Status.FAILED
    assert "ImportError" in gone.exception_class or "ModuleNotFound" in gone.exception_class
    assert recorded.status == TaskResultStatus.FAILED
    assert recorded.errors[0].exception_class_path == gone.exception_class
    assert recorded.task.module_path == "tests.testapp.tasks.gone"


def _body(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": "gone-1",
        "task": record.task_path,
        "args": [],
        "kwargs": {},
        "backend": "default",
        "queue_name": "default",
        "priority": 0,
        "takes_context": False,
        "run_after": None,
        "enqueued_at": None,
    }


def test_metrics_count_tasks_enqueued_and_finished_by_status(broker: Broker) -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    add = {"backend": "default", "queue": "default", "task": tasks.add.module_path}
    fail = {**add, "task": tasks.fail.module_path}
    before = (
        value("rabbitbus_tasks_enqueued_total", **add),
        value("rabbitbus_tasks_finished_total", **add, status="successful"),
        value("rabbitbus_tasks_finished_total", **fail, status="failed"),
        value("rabbitbus_task_seconds_count", task=tasks.fail.module_path),
    )
    metrics_on = {**django_settings.RABBITBUS, "METRICS": {}}
    with override_settings(RABBITBUS=metrics_on), tasks_backend(broker) as backend:
        done = [tasks.add.enqueue(1, 1), tasks.add.enqueue(2, 2), tasks.fail.enqueue("x")]
        with thread_worker(backend).start(broker):
            for result in done:
                finished(result, broker)
            # task_finished is sent once the result is written: wait for the last count.
            assert broker.wait_for(
                lambda: (
                    value("rabbitbus_task_seconds_count", task=tasks.fail.module_path) - before[3]
                    == 1
                ),
                timeout=20,
            )
        after = (
            value("rabbitbus_tasks_enqueued_total", **add),
            value("rabbitbus_tasks_finished_total", **add, status="successful"),
            value("rabbitbus_tasks_finished_total", **fail, status="failed"),
            value("rabbitbus_task_seconds_count", task=tasks.fail.module_path),
        )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 1, 1]


@pytest.mark.parametrize("clock", [tasks.clock, tasks.async_clock], ids=["sync", "async"])
def test_the_signals_tell_enqueued_started_and_finished_in_that_order(
    broker: Broker, clock: Any
) -> None:
    """Django's ``task_enqueued``, ``task_started`` (before the task runs: it returns the
    time it ran) and ``task_finished`` (with its result), each once, for a sync and an
    async task."""
    from rabbitbus.tasks.compat import task_enqueued, task_finished, task_started

    told: list[tuple[str, str, Any, float]] = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            told.append((name, task_result.id, task_result.status, time.time()))

        return receive

    receivers = {
        signal: receiver(name)
        for signal, name in (
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        )
    }
    for signal, receive in receivers.items():
        signal.connect(receive)
    try:
        with tasks_backend(broker) as backend:
            result = clock.enqueue()
            with thread_worker(backend).start(broker):
                finished(result, broker)
                assert broker.wait_for(lambda: len(told) == 3, timeout=20), told
    finally:
        for signal, receive in receivers.items():
            signal.disconnect(receive)
    assert [(name, id_, status) for name, id_, status, _ in told] == [
        ("enqueued", result.id, TaskResultStatus.READY),
        ("started", result.id, TaskResultStatus.RUNNING),
        ("finished", result.id, TaskResultStatus.SUCCESSFUL),
    ]
    started_at = told[1][3]
    assert started_at <= result.return_value <= told[2][3]
