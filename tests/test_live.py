"""The dashboard WebSocket through the project's ASGI stack (auth, origin check)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import path

from demo_shop.asgi import application
from rabbitbus import monitoring
from rabbitbus.live import DashboardConsumer, MessageStreamConsumer
from rabbitbus.models import TaskRecord
from rabbitbus.transport import connections

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/rabbitbus/dashboard/"
ORIGIN = (b"origin", b"http://testserver")


@database_sync_to_async
def session_cookie(is_staff: bool, can_view: bool) -> bytes:
    user = User.objects.create_user(f"ws{User.objects.count()}", is_staff=is_staff)
    if can_view:
        user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture(autouse=True)
async def close_connections() -> AsyncIterator[None]:
    DashboardConsumer.interval = 0.2
    yield
    DashboardConsumer.interval = 2.0
    await connections.aclose_all()


async def connect(*headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(application, PATH, headers=list(headers))
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def test_anonymous_is_refused() -> None:
    communicator, connected, _ = await connect(ORIGIN)
    assert connected is False
    await communicator.disconnect()


@pytest.mark.parametrize(("is_staff", "can_view"), [(False, True), (True, False)])
async def test_without_staff_and_permission_is_refused(is_staff: bool, can_view: bool) -> None:
    communicator, connected, _ = await connect(
        ORIGIN, (b"cookie", await session_cookie(is_staff, can_view))
    )
    assert connected is False
    await communicator.disconnect()


async def test_foreign_origin_is_refused() -> None:
    cookie = await session_cookie(True, True)
    communicator, connected, _ = await connect(
        (b"origin", b"http://evil.example"), (b"cookie", cookie)
    )
    assert connected is False
    await communicator.disconnect()


async def receive_until(communicator: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    for _ in range(50):
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == kind:
            return dict(message)
    raise AssertionError(f"no {kind} message in 50")


async def test_staff_receives_snapshots_and_events() -> None:
    communicator, connected, _ = await connect(
        ORIGIN, (b"cookie", await session_cookie(True, True))
    )
    assert connected is True
    try:
        snapshot = await receive_until(communicator, "overview")
        assert snapshot["data"]["reachable"] is True
        assert await monitoring.apublish_event("worker.stats", {"processed": 5}) is True
        event = await receive_until(communicator, "event")
        assert event == {"type": "event", "kind": "worker.stats", "data": {"processed": 5}}
    finally:
        await communicator.disconnect()


def failed_default_tasks(snapshot: dict[str, Any]) -> int:
    (row,) = [row for row in snapshot["data"]["tasks"] if row["name"] == "default"]
    return int(row["results"]["FAILED"])


async def test_task_result_counts_change_live() -> None:
    communicator, connected, _ = await connect(
        ORIGIN, (b"cookie", await session_cookie(True, True))
    )
    assert connected is True
    try:
        before = failed_default_tasks(await receive_until(communicator, "overview"))
        await database_sync_to_async(TaskRecord.objects.create)(
            id="live-1", task_path="x.y", queue_name="default", status="FAILED"
        )
        for _ in range(50):  # a later snapshot counts it, without reloading anything
            if failed_default_tasks(await receive_until(communicator, "overview")) == before + 1:
                break
        else:
            raise AssertionError("the FAILED count never grew")
    finally:
        await communicator.disconnect()


class UnsaidStream(MessageStreamConsumer):
    """A subclass that does not say who may listen."""

    exchange = "amq.topic"


UNSAID = AuthMiddlewareStack(URLRouter([path("ws/unsaid/", UnsaidStream.as_asgi())]))


@pytest.mark.parametrize(("is_staff", "accepted"), [(None, False), (False, False), (True, True)])
async def test_a_stream_that_does_not_say_who_may_listen_takes_staff_only(
    is_staff: bool | None, accepted: bool
) -> None:
    headers = [] if is_staff is None else [(b"cookie", await session_cookie(is_staff, False))]
    communicator = WebsocketCommunicator(UNSAID, "/ws/unsaid/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    await communicator.disconnect()
    assert (connected, code if not connected else None) == (accepted, None if accepted else 4403)
