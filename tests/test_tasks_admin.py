"""Task results in the admin: filters, escaping, read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from rabbitbus.models import TaskRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    admin = User.objects.create_superuser("admin", password="pw")  # noqa: S106
    client = Client()
    client.force_login(admin)
    return client


def row(key: str, status: str, task_path: str = "app.tasks.send", **fields: str) -> TaskRecord:
    return TaskRecord.objects.create(
        id=key, task_path=task_path, queue_name="default", status=status, **fields
    )


def test_the_changelist_filters_by_status_task_and_queue(client: Client) -> None:
    row("done-1", TaskRecord.Status.SUCCESSFUL)
    row("failed-1", TaskRecord.Status.FAILED)
    row("other-1", TaskRecord.Status.FAILED, task_path="app.tasks.other")
    url = reverse("admin:rabbitbus_taskrecord_changelist")
    page = client.get(url, {"status__exact": "FAILED", "task_path": "app.tasks.send"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "failed-1" in text
    assert "done-1" not in text and "other-1" not in text
    assert "?queue_name=default" in client.get(url).content.decode()  # the queue filter


def test_the_detail_page_shows_the_traceback_escaped_and_offers_no_save(client: Client) -> None:
    row("f", TaskRecord.Status.FAILED, traceback="ValueError: <script>x</script>")
    page = client.get(reverse("admin:rabbitbus_taskrecord_change", args=["f"]))
    text = page.content.decode()
    assert "ValueError: &lt;script&gt;x&lt;/script&gt;" in text
    assert 'name="_save"' not in text


@pytest.mark.parametrize("task_path", ["tests.testapp.tasks.does_not_exist", "nomodule.x"])
def test_a_failed_row_of_a_task_that_cannot_be_imported_lists_and_shows(
    client: Client, task_path: str
) -> None:
    row("gone", TaskRecord.Status.FAILED, task_path=task_path, exception_class="ImportError")
    listed = client.get(reverse("admin:rabbitbus_taskrecord_changelist"))
    shown = client.get(reverse("admin:rabbitbus_taskrecord_change", args=["gone"]))
    assert listed.status_code == shown.status_code == 200
    assert task_path in listed.content.decode() and task_path in shown.content.decode()
