"""The dashboard's task queues: broker counts, deferred tasks and stored results by status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from rabbitbus import monitoring
from rabbitbus.models import TaskRecord
from rabbitbus.monitoring import task_monitoring
from tests.broker import Broker
from tests.monitoring_helpers import MANAGEMENT, rabbitbus_settings
from tests.tasks_support import finished, tasks_backend, thread_worker
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def task_row(name: str = "default") -> task_monitoring.TaskQueueStats:
    (row,) = [row for row in monitoring.overview().tasks if row.name == name]
    return row


def test_ready_deferred_and_results_by_status_before_and_after_a_worker(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        added = [tasks.add.enqueue(1, 2), tasks.add.enqueue(3, 4)]
        failed = tasks.fail.enqueue("on purpose")
        tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
        before = task_row()
        assert (before.queue, before.backend) == (backend.options_.queue("default"), "default")
        assert (before.ready, before.deferred, before.consumers) == (3, 1, 0)
        assert before.results == {"READY": 4, "RUNNING": 0, "SUCCESSFUL": 0, "FAILED": 0}
        with thread_worker(backend).start(broker):
            for result in [*added, failed]:
                finished(result, broker)
            assert task_row().consumers == 1
        after = task_row()
    assert (after.ready, after.deferred) == (0, 1)
    assert after.results == {"READY": 1, "RUNNING": 0, "SUCCESSFUL": 2, "FAILED": 1}


def test_each_queue_name_has_its_row_and_counts_only_its_results(broker: Broker) -> None:
    with tasks_backend(broker):
        tasks.noop.using(queue_name="other").enqueue()
        rows = {row.name: row for row in monitoring.overview().tasks}
    assert sorted(rows) == ["default", "other"]
    assert (rows["other"].ready, rows["other"].results["READY"]) == (1, 1)
    assert (rows["default"].ready, rows["default"].results["READY"]) == (0, 0)


def test_unacked_tasks_come_from_the_management_api(broker: Broker) -> None:
    with tasks_backend(broker) as backend, broker.channel() as channel:
        tasks.noop.enqueue()
        method, _, _ = channel.basic_get(backend.options_.queue("default"), auto_ack=False)
        assert method is not None  # held, not acked: as a worker running the task holds it
        with override_settings(RABBITBUS=rabbitbus_settings(MANAGEMENT=MANAGEMENT)):
            # The management API's figures lag the broker by its stats interval (5 s by default).
            assert broker.wait_for(lambda: task_row().unacked == 1, timeout=30)
            assert task_row().ready == 0


def test_delay_and_task_dead_letter_queues_are_known_to_the_dashboard(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        queue = backend.options_.queue("default")
        snapshot = monitoring.overview()
    by_name = {stats.name: stats for stats in snapshot.queues}
    assert by_name[f"{queue}.delay.1000"].retry  # hidden with the retry queues by default
    assert f"{queue}.dlq" in [stats.name for stats in snapshot.dead_letters]


def test_no_task_backend_no_task_rows() -> None:
    with override_settings(TASKS={"default": {"BACKEND": "some.other.Backend"}}):
        assert task_monitoring.configured_queues() == []
        assert task_monitoring.task_queues([]) == []


def viewer(*codenames: str) -> Client:
    user = User.objects.create_user(f"t{User.objects.count()}", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="rabbitbus", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_links_each_status_count_to_the_task_results(broker: Broker) -> None:
    with tasks_backend(broker) as backend:
        tasks.add.enqueue(1, 1)
        client = viewer("view_dashboard", "view_taskrecord")
        page = client.get(reverse("admin:rabbitbus_dashboard_changelist")).content.decode()
        changelist = reverse("admin:rabbitbus_taskrecord_changelist")
        assert backend.options_.queue("default") in page
        row = page.split('data-task-queue="default:default"')[1].split("</tr>")[0]
        assert f'href="{changelist}?queue_name__exact=default"' in row
        ready = f'href="{changelist}?queue_name__exact=default&amp;status__exact=READY">1</a>'
        assert ready in row
        listed = client.get(f"{changelist}?queue_name__exact=default&status__exact=READY")
        assert listed.status_code == 200 and "tests.testapp.tasks.add" in listed.content.decode()


def test_without_the_results_permission_the_counts_are_not_links(broker: Broker) -> None:
    with tasks_backend(broker):
        page = viewer("view_dashboard").get(reverse("admin:rabbitbus_dashboard_changelist"))
    row = page.content.decode().split('data-task-queue="default:default"')[1].split("</tr>")[0]
    assert 'data-status="READY">0</td>' in row
    assert reverse("admin:rabbitbus_taskrecord_changelist") not in row


def test_the_data_endpoint_carries_the_task_queues(broker: Broker) -> None:
    with tasks_backend(broker):
        TaskRecord.objects.create(id="t1", task_path="x.y", queue_name="default", status="FAILED")
        data = viewer("view_dashboard").get(reverse("admin:rabbitbus_dashboard_data")).json()
    (row,) = [row for row in data["tasks"] if row["name"] == "default"]
    assert row["results"]["FAILED"] == 1 and row["ready"] == 0
