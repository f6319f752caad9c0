"""The monitoring snapshot, from both queue sources, and the events it publishes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from rabbitbus import monitoring
from rabbitbus.models import OutboxMessage, WorkerHeartbeat
from rabbitbus.transport import connections
from tests.broker import MANAGEMENT_PORT, Broker, unique
from tests.monitoring_helpers import (
    MANAGEMENT,
    Shop,
    dead_letter,
    get_all,
    rabbitbus_settings,
    shop_topology,
)


@pytest.fixture
def shop(broker: Broker) -> Iterator[Shop]:
    with shop_topology(broker) as shop:
        yield shop


def publish_raw(broker: Broker, shop: Shop, count: int) -> None:
    with broker.channel() as channel:
        for _ in range(count):
            channel.basic_publish(shop.exchange, "order.placed", b"{}")


def by_name(snapshot: monitoring.Overview) -> dict[str, monitoring.QueueStats]:
    return {queue.name: queue for queue in snapshot.queues}


def test_passive_declares_give_depths_and_explain_missing_rates(broker: Broker, shop: Shop) -> None:
    publish_raw(broker, shop, 3)
    dead_letter(broker, shop, "d1")
    snapshot = monitoring.broker_overview()
    assert snapshot.reachable and snapshot.version.startswith("3.")
    assert snapshot.source == "passive declare" and "MANAGEMENT" in snapshot.note
    queues = by_name(snapshot)
    assert (queues[shop.queue].ready, queues[shop.queue].consumers) == (3, 0)
    assert queues[shop.queue].publish_rate is None
    assert shop.dlq in [q.name for q in snapshot.dead_letters]
    assert queues[shop.dlq].ready == 1


def test_management_api_gives_depths_and_rates(broker: Broker, shop: Shop) -> None:
    publish_raw(broker, shop, 2)
    with override_settings(
        RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=MANAGEMENT)
    ):
        # The management API's figures lag the broker by its stats interval (5 s by default),
        # and on a loaded machine one request may pass its 3 s TIMEOUT (then the snapshot
        # falls back to passive declares, tested below): wait for an answer from the API.
        snapshots: list[monitoring.Overview] = []

        def from_the_api() -> bool:
            snapshots.append(monitoring.broker_overview())
            ready = by_name(snapshots[-1])[shop.queue].ready
            return snapshots[-1].source == "management API" and ready == 2

        assert broker.wait_for(from_the_api, timeout=60, interval=0.5)
    snapshot = snapshots[-1]
    assert snapshot.source == "management API" and snapshot.note == ""
    queue = by_name(snapshot)[shop.queue]
    assert queue.unacked == 0 and queue.consumers == 0
    assert isinstance(queue.publish_rate, float) and isinstance(queue.deliver_rate, float)


def test_missing_queue_is_marked_not_raised(broker: Broker, shop: Shop) -> None:
    with broker.channel() as channel:
        channel.queue_delete(shop.dlq)
    queues = by_name(monitoring.broker_overview())
    assert queues[shop.dlq].exists is False
    assert queues[shop.queue].exists is True


def test_management_api_down_falls_back_to_declares(shop: Shop) -> None:
    down = {**MANAGEMENT, "URL": "http://127.0.0.1:9", "TIMEOUT": 1}
    with override_settings(
        RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=down)
    ):
        snapshot = monitoring.broker_overview()
    assert snapshot.source == "passive declare"
    assert "Management API unavailable" in snapshot.note
    assert by_name(snapshot)[shop.queue].ready == 0


def test_unreachable_broker_is_reported(shop: Shop) -> None:
    url = "amqp://guest:s3cret@127.0.0.1:9/x"
    connections = {"default": {"URL": url, "RECONNECT_TIMEOUT": 0.5}}
    with override_settings(RABBITBUS=rabbitbus_settings(CONNECTIONS=connections)):
        snapshot = monitoring.broker_overview()
    assert snapshot.reachable is False and snapshot.error
    assert "s3cret" not in snapshot.error


@pytest.mark.django_db
def test_workers_marked_stale_after_the_threshold() -> None:
    now = timezone.now()
    for worker_id, age in (("fresh", 5), ("old", 600)):
        WorkerHeartbeat.objects.create(
            worker_id=worker_id, hostname="h", pid=1, consumers=["q"], processed=7,
            started_at=now, last_seen=now - timedelta(seconds=age),
        )  # fmt: skip
    rows = {row["worker_id"]: row for row in monitoring.workers(now)}
    assert rows["fresh"]["stale"] is False and rows["old"]["stale"] is True
    assert rows["fresh"]["processed"] == 7


@pytest.mark.django_db
def test_outbox_pending_failing_and_oldest_age() -> None:
    now = timezone.now()
    for n, (status, attempts) in enumerate([("pending", 0), ("pending", 2), ("sent", 0)]):
        OutboxMessage.objects.create(
            exchange="x", routing_key="k", message_id=f"o{n}", body=b"", content_type="t",
            status=status, attempts=attempts,
        )  # fmt: skip
    OutboxMessage.objects.filter(message_id="o0").update(created_at=now - timedelta(seconds=90))
    stats = monitoring.outbox(now)
    assert stats["pending"] == 2 and stats["failing"] == 1
    assert 89 <= stats["oldest_age"] <= 91


@pytest.mark.django_db
def test_rabbit_status_prints_the_overview_without_the_password(broker: Broker, shop: Shop) -> None:
    publish_raw(broker, shop, 1)
    secret = {**MANAGEMENT, "URL": "http://127.0.0.1:9", "PASSWORD": "hunter2", "TIMEOUT": 1}
    out = io.StringIO()
    with override_settings(
        RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=secret)
    ):
        call_command("rabbit_status", stdout=out)
    text = out.getvalue()
    assert "Broker: reachable" in text and shop.queue in text and shop.dlq in text
    assert "Outbox: pending=0" in text and "(no heartbeats)" in text
    assert "hunter2" not in text


@pytest.mark.django_db
def test_rabbit_status_json(shop: Shop) -> None:
    out = io.StringIO()
    call_command("rabbit_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["reachable"] is True
    assert shop.dlq in {queue["name"] for queue in data["queues"]}


@pytest.fixture
def events_queue(broker: Broker) -> Iterator[str]:
    name = unique("events")
    with broker.channel() as channel:
        channel.exchange_declare(monitoring.events_exchange(), "topic", durable=True)
        channel.queue_declare(name, exclusive=False, auto_delete=False)
        channel.queue_bind(name, monitoring.events_exchange(), "worker.#")
    yield name
    with broker.channel() as channel:
        channel.queue_delete(name)


def test_publish_event_reaches_a_bound_queue(broker: Broker, events_queue: str) -> None:
    assert monitoring.publish_event("worker.stats", {"processed": 3}) is True
    [(properties, body)] = get_all(broker, events_queue)
    assert json.loads(body) == {"processed": 3}
    assert properties.type == "worker.stats" and properties.delivery_mode == 1


async def test_apublish_event_reaches_a_bound_queue(broker: Broker, events_queue: str) -> None:
    try:
        assert await monitoring.apublish_event("worker.failed", {"id": "m"}) is True
    finally:
        await connections.aclose_all()
    [(_, body)] = get_all(broker, events_queue)
    assert json.loads(body) == {"id": "m"}


def test_publish_event_never_raises(broker: Broker) -> None:
    with broker.channel() as channel:
        channel.exchange_delete(monitoring.events_exchange())
    assert monitoring.publish_event("worker.stats", {}) is False
    assert monitoring.publish_event("worker.stats", {"bad": object()}) is False


async def test_apublish_event_never_raises(broker: Broker) -> None:
    with broker.channel() as channel:
        channel.exchange_delete(monitoring.events_exchange())
    try:
        assert await monitoring.apublish_event("worker.stats", {}) is False
    finally:
        await connections.aclose_all()


def test_events_exchange_is_in_the_registry() -> None:
    from rabbitbus import topology

    assert monitoring.events_exchange() in topology.configured().exchanges


def test_management_api_refusal_is_typed_and_hides_the_password() -> None:
    from rabbitbus.exceptions import ManagementApiError
    from rabbitbus.monitoring.mgmt import ManagementApi

    api = ManagementApi(f"http://127.0.0.1:{MANAGEMENT_PORT}", "guest", "wrong-s3cret", timeout=5)
    with pytest.raises(ManagementApiError, match="HTTP 401") as excinfo:
        api.queues("/")
    assert "wrong-s3cret" not in str(excinfo.value) and "wrong-s3cret" not in repr(api)


@pytest.mark.django_db
def test_rabbit_status_from_the_management_api(broker: Broker, shop: Shop) -> None:
    out = io.StringIO()
    with override_settings(
        RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=MANAGEMENT)
    ):
        # The management API lists a new queue after its next stats emission.
        assert broker.wait_for(
            lambda: by_name(monitoring.broker_overview())[shop.queue].exists, timeout=30
        )
        call_command("rabbit_status", stdout=out)
    assert "(queues by management API)" in out.getvalue()
    assert "/s" in out.getvalue()  # rates are shown
    assert "  name " in out.getvalue() and " consumers    publish    deliver" in out.getvalue()


@pytest.mark.django_db
def test_rabbit_status_without_the_management_api_has_no_rate_columns(shop: Shop) -> None:
    out = io.StringIO()
    call_command("rabbit_status", stdout=out)
    lines = out.getvalue().splitlines()
    assert "Note: Rates need the management API" in out.getvalue()
    header = lines[lines.index("Queues:") + 1]
    assert header.split() == ["name", "ready", "unacked", "consumers"]
    [row] = [line for line in lines if line.split()[:1] == [shop.queue]]
    assert len(row.split()) == 4  # name and three figures, no "-" rates


@pytest.mark.django_db
def test_the_nodes_their_alarms_and_our_connections_on_each(broker: Broker, shop: Shop) -> None:
    import rabbitbus

    settings = rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=MANAGEMENT)
    with override_settings(RABBITBUS=settings):
        assert monitoring.broker_overview().nodes[0]["running"]  # the API answers
        rabbitbus.publish(shop.exchange, "order.placed", {}, mandatory=False)  # connects

        def ours() -> int:
            return sum(node["connections"] for node in monitoring.broker_overview().nodes)

        # The management API lists a connection after its next stats emission.
        assert broker.wait_for(lambda: ours() >= 1, timeout=30)
        [node] = monitoring.broker_overview().nodes  # one node here; docs/cluster.md: three
        out = io.StringIO()
        call_command("rabbit_status", stdout=out)
        as_json = io.StringIO()
        call_command("rabbit_status", "--json", stdout=as_json)
    assert node["name"].startswith("rabbit@") and node["alarms"] == []
    assert f"  {node['name']} running, our connections: " in out.getvalue()
    assert json.loads(as_json.getvalue())["nodes"][0]["name"] == node["name"]
    # Without the management API there is no node list (and no error).
    assert monitoring.broker_overview().nodes == []


@pytest.mark.django_db
def test_rabbit_status_fails_when_the_broker_is_unreachable() -> None:
    from django.core.management import CommandError

    connections_setting = {
        "default": {"URL": "amqp://guest:guest@127.0.0.1:9/", "RECONNECT_TIMEOUT": 0.5}
    }
    out = io.StringIO()
    with (
        override_settings(RABBITBUS=rabbitbus_settings(CONNECTIONS=connections_setting)),
        pytest.raises(CommandError, match="unreachable"),
    ):
        call_command("rabbit_status", stdout=out)
    assert "Broker: UNREACHABLE" in out.getvalue()


def test_management_api_gives_each_queue_its_recent_history(broker: Broker, shop: Shop) -> None:
    publish_raw(broker, shop, 2)
    with override_settings(
        RABBITBUS=rabbitbus_settings(QUEUES=shop.queues_setting(), MANAGEMENT=MANAGEMENT)
    ):
        # Samples follow the broker's stats interval (5 s by default).
        def history() -> dict[str, list[list[float]]]:
            return by_name(monitoring.broker_overview())[shop.queue].history or {}

        # 60 s: a request past the API's 3 s TIMEOUT on a loaded machine gives no history.
        assert broker.wait_for(
            lambda: any(p[1] == 2 for p in history().get("depth", [])), timeout=60, interval=0.5
        )
        depth = history()["depth"]
    times = [point[0] for point in depth]
    assert times == sorted(times) and len(times) >= 2


def test_dropped_events_warn_once_per_reason_until_one_gets_through(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker publishes its stats every few seconds: with the events exchange missing,
    the operator gets one warning naming the fix, not one per event all night; once an
    event gets through, the next failure warns again."""
    from rabbitbus.monitoring import status

    with broker.channel() as channel:
        channel.exchange_delete(monitoring.events_exchange())
    status._dropping = None
    caplog.set_level("DEBUG", logger="rabbitbus.monitoring")
    for _ in range(3):
        assert monitoring.publish_event("worker.stats", {}) is False
    with broker.channel() as channel:
        channel.exchange_declare(monitoring.events_exchange(), "topic", durable=True)
    assert monitoring.publish_event("worker.stats", {}) is True
    with broker.channel() as channel:
        channel.exchange_delete(monitoring.events_exchange())
    assert monitoring.publish_event("worker.stats", {}) is False
    told = [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "rabbitbus.monitoring"
    ]
    assert [level for level, _ in told] == ["WARNING", "DEBUG", "DEBUG", "INFO", "WARNING"]
    assert "rabbit_setup declares the events exchange" in told[0][1]
