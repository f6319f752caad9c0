"""rabbitbus.tasks.results: batched writes and rows to TaskResult."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from rabbitbus.models import TaskRecord
from rabbitbus.tasks import results
from rabbitbus.tasks.compat import InvalidTask, TaskResultStatus, task_backends

pytestmark = pytest.mark.django_db(transaction=True)


def record(key: str, status: str = TaskRecord.Status.RUNNING) -> TaskRecord:
    return TaskRecord(id=key, task_path="tests.testapp.tasks.add", queue_name="q", status=status)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch written."""
    sizes: list[int] = []
    original = results.write

    def counting(records: Any, using: str) -> None:
        sizes.append(len(records))
        original(records, using)

    monkeypatch.setattr(results, "write", counting)
    return sizes


async def test_records_submitted_together_are_written_in_one_transaction(
    writes: list[int],
) -> None:
    writer = results.ResultWriter("default")
    await asyncio.gather(*(writer.submit(record(f"r{i}")) for i in range(50)))
    await writer.close()
    assert writes == [50]
    assert await TaskRecord.objects.acount() == 50


async def test_a_later_record_of_the_same_task_replaces_the_unwritten_one(
    writes: list[int],
) -> None:
    writer = results.ResultWriter("default")
    running = writer.submit(record("same"))
    done = writer.submit(record("same", TaskRecord.Status.SUCCESSFUL))
    await asyncio.gather(running, done)
    await writer.close()
    assert writes == [1]
    assert (await TaskRecord.objects.aget(id="same")).status == TaskRecord.Status.SUCCESSFUL


async def test_records_arriving_during_a_write_form_the_next_batch(writes: list[int]) -> None:
    writer = results.ResultWriter("default")
    first = writer.submit(record("a"))
    await asyncio.sleep(0)  # the first batch is being written
    rest = [writer.submit(record(key)) for key in ("b", "c", "d")]
    await asyncio.gather(first, *rest)
    await writer.close()
    assert writes == [1, 3]


async def test_a_failed_write_fails_every_waiter_of_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(records: Any, using: str) -> None:
        raise RuntimeError("database says no")

    monkeypatch.setattr(results, "write", broken)
    writer = results.ResultWriter("default")
    outcomes = await asyncio.gather(
        writer.submit(record("x")), writer.submit(record("y")), return_exceptions=True
    )
    await writer.close()
    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError]


async def test_a_row_reads_back_as_a_task_result() -> None:
    await TaskRecord.objects.acreate(
        id="ok", task_path="tests.testapp.tasks.add", queue_name="default",
        status=TaskRecord.Status.SUCCESSFUL, args=[1, 2], return_value=3, worker_ids=["w1"],
    )  # fmt: skip
    result = await sync_to_async(results.get_result)("ok", "default")
    assert (result.args, result.return_value, result.worker_ids) == ([1, 2], 3, ["w1"])
    assert result.task.name == "add"


def failed_row(key: str, task_path: str, exception_class: str) -> TaskRecord:
    """A row as the worker writes it for a message naming a task it cannot import."""
    return TaskRecord.objects.create(
        id=key, task_path=task_path, queue_name="default", status=TaskRecord.Status.FAILED,
        exception_class=exception_class, traceback=f"{exception_class}: gone\n",
        attempts=1, worker_ids=["w1"],
    )  # fmt: skip


UNIMPORTABLE = [
    ("tests.testapp.tasks.does_not_exist", "builtins.ImportError"),
    ("nomodule.x", "builtins.ModuleNotFoundError"),
    ("tests.tasks_support.params", "builtins.TypeError"),  # imports, but is no task
]


@pytest.mark.parametrize(("task_path", "exception_class"), UNIMPORTABLE)
async def test_a_failed_row_of_a_task_that_cannot_be_imported_reads_back(
    task_path: str, exception_class: str
) -> None:
    """get_result() / aget_result() give the FAILED result the worker recorded, with its
    exception class, not the ImportError of the missing task."""
    await sync_to_async(failed_row)("gone", task_path, exception_class)
    backend = task_backends["default"]
    read = await sync_to_async(backend.get_result)("gone")
    aread = await backend.aget_result("gone")
    for result in (read, aread):
        assert result.status == TaskResultStatus.FAILED
        assert [error.exception_class_path for error in result.errors] == [exception_class]
        assert result.errors[0].traceback == f"{exception_class}: gone\n"
        assert (result.task.module_path, result.task.queue_name) == (task_path, "default")
        assert result.task.name == task_path.rpartition(".")[2]
        assert result.worker_ids == ["w1"]
    with pytest.raises(ImportError, match=f"Task {task_path} cannot be run"):
        read.task.call()
    await sync_to_async(read.refresh)()  # through the task's backend, as any result
    assert read.status == TaskResultStatus.FAILED


@pytest.mark.parametrize(
    ("queue_name", "backend"), [("since_removed", "default"), ("default", "since_removed")]
)
async def test_a_row_whose_queue_or_backend_was_removed_since_reads_back(
    queue_name: str, backend: str
) -> None:
    """The settings changed after the task was enqueued (its queue or its backend alias
    gone): the stored result still reads back as recorded, its task runnable, not an
    InvalidTask from validating yesterday's row against today's settings."""
    await TaskRecord.objects.acreate(
        id="moved", task_path="tests.testapp.tasks.add", queue_name=queue_name, backend=backend,
        status=TaskRecord.Status.SUCCESSFUL, args=[1, 2], return_value=3, worker_ids=["w1"],
    )  # fmt: skip
    result = await sync_to_async(task_backends["default"].get_result)("moved")
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert isinstance(result.task, results.RecordedTask)
    assert (result.task.name, result.task.queue_name, result.task.backend) == (
        "add",
        queue_name,
        backend,
    )
    assert result.task.call(2, 3) == 5
    if queue_name == "since_removed":  # enqueueing it again is validated, as for any task
        with pytest.raises(InvalidTask, match="since_removed"):
            await sync_to_async(result.task.enqueue)(1, 1)
