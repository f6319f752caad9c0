"""The admin dashboard and dead-letter views: the permission matrix and real broker effects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.broker import Broker
from tests.monitoring_helpers import MANAGEMENT, Shop, dead_letter, get_all, shop_topology

pytestmark = pytest.mark.django_db

SECRET_MANAGEMENT = {**MANAGEMENT, "URL": "http://127.0.0.1:9", "PASSWORD": "hunter2", "TIMEOUT": 1}


@pytest.fixture
def shop(broker: Broker) -> Iterator[Shop]:
    with shop_topology(broker, MANAGEMENT=SECRET_MANAGEMENT) as shop:
        yield shop


def staff(*codenames: str) -> User:
    user = User.objects.create_user(f"u{User.objects.count()}", password="pw", is_staff=True)  # noqa: S106
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="rabbitbus", codename__in=codenames)
    )
    return user


def client_for(user: User | None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def csrf_post(client: Client, url: str, data: dict[str, object]) -> object:
    """POST with a valid CSRF token, as a browser that loaded a page first would."""
    client.get(reverse("admin:rabbitbus_dashboard_changelist"))
    token = client.cookies["csrftoken"].value
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def action_url(queue: str, action: str) -> str:
    return reverse(f"admin:rabbitbus_dashboard_dlq_{action}", args=[queue])


def test_anonymous_is_redirected_to_login(shop: Shop) -> None:
    response = client_for(None).get(reverse("admin:rabbitbus_dashboard_changelist"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_staff_without_view_permission_gets_403(shop: Shop) -> None:
    client = client_for(staff())
    assert client.get(reverse("admin:rabbitbus_dashboard_changelist")).status_code == 403
    assert client.get(reverse("admin:rabbitbus_dashboard_data")).status_code == 403
    assert client.get(reverse("admin:rabbitbus_dashboard_dlq", args=[shop.dlq])).status_code == 403


def test_dashboard_shows_queues_dlqs_and_is_linked_from_the_index(
    broker: Broker, shop: Shop
) -> None:
    dead_letter(broker, shop, "m1")
    client = client_for(staff("view_dashboard"))
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:rabbitbus_dashboard_changelist") in index
    page = client.get(reverse("admin:rabbitbus_dashboard_changelist")).content.decode()
    assert shop.queue in page and reverse("admin:rabbitbus_dashboard_dlq", args=[shop.dlq]) in page
    assert "Management API unavailable" in page
    assert "hunter2" not in page


def test_dashboard_lists_the_nodes_with_the_management_api(broker: Broker) -> None:
    client = client_for(staff("view_dashboard"))
    with shop_topology(broker, MANAGEMENT=MANAGEMENT):
        page = client.get(reverse("admin:rabbitbus_dashboard_changelist")).content.decode()
        data = client.get(reverse("admin:rabbitbus_dashboard_data")).json()
    [node] = data["nodes"]
    assert node["running"] and node["name"].startswith("rabbit@")
    assert 'id="rb-nodes"' in page and f'<tr data-node="{node["name"]}">' in page
    assert '<td data-field="state">running</td>' in page


def test_data_endpoint_is_json(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "m1")
    data = client_for(staff("view_dashboard")).get(reverse("admin:rabbitbus_dashboard_data")).json()
    depths = {queue["name"]: queue["ready"] for queue in data["queues"]}
    assert depths[shop.dlq] == 1
    assert "hunter2" not in str(data)


def test_browse_escapes_and_keeps_messages(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "m1", body=b'{"html":"<script>alert(1)</script>"}')
    client = client_for(staff("view_dashboard"))
    page = client.get(reverse("admin:rabbitbus_dashboard_dlq", args=[shop.dlq])).content.decode()
    assert "bad &lt;order&gt;" in page and "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page and "x-rabbitbus-attempts: 3" in page
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 1)


def test_an_empty_dlq_says_so_and_offers_no_action(shop: Shop) -> None:
    client = client_for(staff("view_dashboard"))
    page = client.get(reverse("admin:rabbitbus_dashboard_dlq", args=[shop.dlq])).content.decode()
    assert f"<code>{shop.dlq}</code> is empty" in page
    assert "The first 0" not in page and "Replay" not in page and "Purge" not in page


@pytest.mark.parametrize("action", ["replay", "discard", "purge"])
def test_get_on_a_destructive_url_is_refused(broker: Broker, shop: Shop, action: str) -> None:
    dead_letter(broker, shop, "m1")
    client = client_for(
        staff("view_dashboard", "replay_deadletter", "discard_deadletter", "purge_queue")
    )
    assert (
        client.get(action_url(shop.dlq, action), {"all": "1", "confirm": "yes"}).status_code == 405
    )
    assert broker.queue_depth(shop.dlq) == 1


@pytest.mark.parametrize(
    ("action", "permission"),
    [("replay", "replay_deadletter"), ("discard", "discard_deadletter"), ("purge", "purge_queue")],
)
def test_staff_without_the_action_permission_gets_403(
    broker: Broker, shop: Shop, action: str, permission: str
) -> None:
    dead_letter(broker, shop, "m1")
    others = {"replay_deadletter", "discard_deadletter", "purge_queue"} - {permission}
    client = client_for(staff("view_dashboard", *others))
    response = csrf_post(client, action_url(shop.dlq, action), {"all": "1", "confirm": "yes"})
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert broker.queue_depth(shop.dlq) == 1 and not LogEntry.objects.exists()


def test_post_without_csrf_is_refused(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "m1")
    client = client_for(staff("view_dashboard", "purge_queue"))
    response = client.post(action_url(shop.dlq, "purge"), {"confirm": "yes"})
    assert response.status_code == 403
    assert broker.queue_depth(shop.dlq) == 1


def test_purge_asks_for_confirmation_then_purges_and_logs(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "m1")
    dead_letter(broker, shop, "m2")
    client = client_for(staff("view_dashboard", "purge_queue"))
    confirm = csrf_post(client, action_url(shop.dlq, "purge"), {})
    assert "Every message in" in confirm.content.decode()  # type: ignore[attr-defined]
    assert broker.queue_depth(shop.dlq) == 2
    done = csrf_post(client, action_url(shop.dlq, "purge"), {"confirm": "yes"})
    assert done.status_code == 302  # type: ignore[attr-defined]
    assert broker.queue_depth(shop.dlq) == 0
    entry = LogEntry.objects.get()
    assert (
        entry.change_message == f"Purged 2 message(s) in {shop.dlq}" and entry.object_id == shop.dlq
    )


def test_replay_selected_moves_it_and_a_consumer_gets_it(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "stay")
    dead_letter(broker, shop, "go", body=b'{"n":7}')
    client = client_for(staff("view_dashboard", "replay_deadletter"))
    confirm = csrf_post(client, action_url(shop.dlq, "replay"), {"ids": ["go"]})
    assert "1 message(s) of" in confirm.content.decode()  # type: ignore[attr-defined]
    csrf_post(client, action_url(shop.dlq, "replay"), {"ids": ["go"], "confirm": "yes"})
    [(properties, body)] = get_all(broker, shop.queue)
    assert (properties.message_id, body) == ("go", b'{"n":7}')
    assert broker.queue_depth(shop.dlq) == 1
    assert LogEntry.objects.get().change_message == f"Replayed 1 message(s) in {shop.dlq}"


def test_discard_selected(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "a")
    dead_letter(broker, shop, "b")
    client = client_for(staff("view_dashboard", "discard_deadletter"))
    csrf_post(client, action_url(shop.dlq, "discard"), {"ids": ["a"], "confirm": "yes"})
    assert [p.message_id for p, _ in get_all(broker, shop.dlq)] == ["b"]


@pytest.mark.parametrize(
    "name", ["nope.dlq", "%3Cscript%3Ealert(1)%3C%2Fscript%3E.dlq", "..%2Fx", "%2F"]
)
def test_unknown_or_hostile_queue_names_give_404(broker: Broker, shop: Shop, name: str) -> None:
    dead_letter(broker, shop, "m1")
    client = client_for(staff("view_dashboard", "purge_queue"))
    base = reverse("admin:rabbitbus_dashboard_changelist")
    browse = client.get(f"{base}dlq/{name}/")
    assert browse.status_code == 404 and b"<script>alert" not in browse.content
    purge = csrf_post(client, f"{base}dlq/{name}/purge/", {"confirm": "yes"})
    assert purge.status_code == 404  # type: ignore[attr-defined]
    assert b"<script>alert" not in purge.content  # type: ignore[attr-defined]
    assert broker.queue_depth(shop.dlq) == 1


def test_dashboard_marks_stale_workers(shop: Shop) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from rabbitbus.models import WorkerHeartbeat

    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker_id="w-old", hostname="h1", pid=42, consumers=["orders"], processed=9,
        started_at=now, last_seen=now - timedelta(hours=1),
    )  # fmt: skip
    page = client_for(staff("view_dashboard")).get(reverse("admin:rabbitbus_dashboard_changelist"))
    html = page.content.decode()
    assert 'class="rb-stale"' in html and "w-old" in html and "<strong>stale</strong>" in html


def test_topology_page_embeds_the_graph_for_viewers_only(shop: Shop) -> None:
    url = reverse("admin:rabbitbus_dashboard_topology")
    assert client_for(staff()).get(url).status_code == 403
    page = client_for(staff("view_dashboard")).get(url).content.decode()
    assert 'id="rb-topology-data"' in page and f'"{shop.queue}"' in page
    assert "rabbitbus/topology.js" in page
    assert "only the known topology is drawn" in page and "hunter2" not in page
