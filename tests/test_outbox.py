"""The outbox and its relay on SQLite (one relay), against the real broker."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

import rabbitbus
from rabbitbus import outbox
from rabbitbus.exceptions import BrokerUnavailable
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox.relay import Relay
from tests.broker import UPSTREAM, Broker
from tests.consuming import drain, drain_until
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy(upstream=UPSTREAM) as running:
        yield running


def through(proxy: FaultProxy, **outbox_options: Any) -> override_settings:
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{django_settings.TEST_VHOST}"
    connection = {"URL": url, "RECONNECT_TIMEOUT": 1, "PUBLISH_TIMEOUT": 2}
    return override_settings(
        RABBITBUS={"CONNECTIONS": {"default": connection}, "OUTBOX": outbox_options}
    )


def test_relay_publishes_the_stored_bytes_and_marks_rows_sent(
    broker: Broker, exchange: str, queue: str
) -> None:
    message_id = outbox.enqueue(
        exchange, "order.placed", {"order": 1}, headers={"tenant": "acme"}, type="order.placed"
    )
    assert Relay().run_once() == 1
    (message,) = drain(broker, queue)
    assert (message.message_id, message.payload, message.type) == (
        message_id,
        {"order": 1},
        "order.placed",
    )
    assert message.headers == {"tenant": "acme"}
    row = OutboxMessage.objects.get()
    assert (row.status, row.claimed_by, row.sent_at is not None) == ("sent", "", True)
    assert Relay().run_once() == 0


def test_before_mark_sees_the_batch_published_and_not_yet_marked_sent(
    broker: Broker, exchange: str, queue: str
) -> None:
    message_id = outbox.enqueue(exchange, "order.placed", {"order": 2})
    seen: list[tuple[list[str], str]] = []

    def before_mark(result: rabbitbus.PublishResult) -> None:
        seen.append((list(result.confirmed), OutboxMessage.objects.get().status))

    assert Relay(before_mark=before_mark).run_once() == 1
    assert seen == [([message_id], "pending")]
    assert OutboxMessage.objects.get().status == "sent"
    assert [message.message_id for message in drain(broker, queue)] == [message_id]


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(exchange: str) -> None:
    with pytest.raises(Boom), transaction.atomic():
        outbox.enqueue(exchange, "order.placed", {})
        raise Boom
    assert not OutboxMessage.objects.exists()


def test_publish_on_commit_outside_a_transaction_publishes_at_once(
    broker: Broker, exchange: str, queue: str
) -> None:
    message_id = rabbitbus.publish_on_commit(exchange, "order.placed", {"n": 1})
    assert [m.message_id for m in drain(broker, queue)] == [message_id]


def test_publish_on_commit_rolled_back_publishes_nothing(
    broker: Broker, exchange: str, queue: str
) -> None:
    with pytest.raises(Boom), transaction.atomic():
        rabbitbus.publish_on_commit(exchange, "order.placed", {"n": 1})
        raise Boom
    assert drain(broker, queue) == []


def test_publish_on_commit_falls_back_to_the_outbox_when_the_broker_is_down(
    proxy: FaultProxy, broker: Broker, exchange: str, queue: str
) -> None:
    with through(proxy):
        proxy.refuse(True)
        with transaction.atomic():
            message_id = rabbitbus.publish_on_commit(exchange, "order.placed", {"n": 2})
        row = OutboxMessage.objects.get()
        assert (row.message_id, row.status) == (message_id, "pending")
        proxy.refuse(False)
        assert Relay().run_once() == 1
    assert [m.message_id for m in drain(broker, queue)] == [message_id]


def test_publish_on_commit_can_raise_instead(proxy: FaultProxy, exchange: str) -> None:
    with through(proxy, ON_COMMIT_FAILURE="raise"):
        proxy.refuse(True)
        with pytest.raises(BrokerUnavailable), transaction.atomic():
            rabbitbus.publish_on_commit(exchange, "order.placed", {"n": 3})
    assert not OutboxMessage.objects.exists()


def test_an_unroutable_publish_after_commit_goes_to_the_outbox(exchange: str) -> None:
    rabbitbus.publish_on_commit(exchange, "no.such.binding", {"n": 4})
    row = OutboxMessage.objects.get()
    assert row.routing_key == "no.such.binding"


def test_broker_outage_leaves_rows_pending_and_unpenalised(
    proxy: FaultProxy, exchange: str
) -> None:
    outbox.enqueue(exchange, "order.placed", {})
    with through(proxy):
        proxy.refuse(True)
        with pytest.raises(BrokerUnavailable):
            Relay().run_once()
    row = OutboxMessage.objects.get()
    assert (row.status, row.attempts, row.claimed_by, row.claimed_until) == ("pending", 0, "", None)


def test_a_database_failure_logs_its_traceback_once_then_one_line_until_it_ends(
    exchange: str, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    outbox.enqueue(exchange, "order.placed", {})
    relay, table = Relay(), OutboxMessage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        assert [relay._step() for _ in range(3)] == [None, None, None]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert relay._step() == 1
    records = [r for r in caplog.records if r.name == "rabbitbus.outbox.relay"]
    assert [(r.levelname, bool(r.exc_info)) for r in records] == [
        ("ERROR", True),
        ("WARNING", False),
        ("WARNING", False),
        ("INFO", False),
    ]
    assert "no such table" in records[1].getMessage()
    assert records[3].getMessage().startswith("Relay recovered (after OperationalError")


def test_unroutable_rows_back_off_then_fail_visibly(exchange: str) -> None:
    outbox.enqueue(exchange, "no.such.binding", {})
    relay = Relay(options={"MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0.2})
    assert relay.run_once() == 1
    row = OutboxMessage.objects.get()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.claimed_until is not None and row.claimed_until > timezone.now()
    assert relay.run_once() == 0  # backing off
    time.sleep(0.3)
    assert relay.run_once() == 1
    row = OutboxMessage.objects.get()
    assert (row.status, row.attempts, relay.failed) == ("failed", 2, 1)
    assert row.last_error.startswith("Unroutable")


def test_a_missing_exchange_fails_the_row_not_the_batch(
    broker: Broker, exchange: str, queue: str
) -> None:
    outbox.enqueue("no-such-exchange", "x", {})
    good = outbox.enqueue(exchange, "order.placed", {})
    relay = Relay(options={"MAX_ATTEMPTS": 1})
    while relay.run_once():
        pass
    statuses = dict(OutboxMessage.objects.values_list("exchange", "status"))
    assert statuses == {"no-such-exchange": "failed", exchange: "sent"}
    assert {m.message_id for m in drain(broker, queue)} == {good}


def test_failed_rows_can_be_retried_by_an_operator(exchange: str) -> None:
    outbox.enqueue(exchange, "no.such.binding", {})
    Relay(options={"MAX_ATTEMPTS": 1}).run_once()
    assert outbox.retry_failed() == 1
    assert OutboxMessage.objects.get().status == "pending"


def test_prune_deletes_only_old_sent_rows(exchange: str) -> None:
    for _ in range(3):
        outbox.enqueue(exchange, "order.placed", {})
    old, recent, pending = OutboxMessage.objects.order_by("id")
    OutboxMessage.objects.filter(id=old.id).update(
        status="sent", sent_at=timezone.now() - timedelta(days=8)
    )
    OutboxMessage.objects.filter(id=recent.id).update(status="sent", sent_at=timezone.now())
    assert outbox.prune() == 1
    assert set(OutboxMessage.objects.values_list("id", flat=True)) == {recent.id, pending.id}


def test_only_the_oldest_pending_row_of_an_aggregate_is_claimable(exchange: str) -> None:
    first_a = outbox.enqueue(exchange, "a", {}, aggregate="order:1")
    outbox.enqueue(exchange, "a", {}, aggregate="order:1")
    first_b = outbox.enqueue(exchange, "b", {}, aggregate="order:2")
    loose = outbox.enqueue(exchange, "c", {})
    claimed = outbox.claim("relay-1", 10, 60)
    assert [row.message_id for row in claimed] == [first_a, first_b, loose]
    assert outbox.claim("relay-2", 10, 60) == []  # order:1's second waits for its first


def test_expired_claims_are_taken_again(exchange: str) -> None:
    message_id = outbox.enqueue(exchange, "a", {})
    assert [r.message_id for r in outbox.claim("killed", 10, 0.2)] == [message_id]
    assert outbox.claim("other", 10, 60) == []
    time.sleep(0.3)
    assert [r.message_id for r in outbox.claim("other", 10, 60)] == [message_id]


def test_one_relay_keeps_aggregate_order_across_batches(
    broker: Broker, exchange: str, queue: str
) -> None:
    for seq in range(5):
        outbox.enqueue(exchange, "order.event", {"seq": seq}, aggregate="order:7")
    relay = Relay(options={"BATCH_SIZE": 2})
    while relay.run_once():
        pass
    assert [m.payload["seq"] for m in drain(broker, queue)] == [0, 1, 2, 3, 4]


def test_the_relay_wakes_on_a_local_write_without_waiting_for_its_poll(
    broker: Broker, exchange: str, queue: str
) -> None:
    stop = threading.Event()
    relay = Relay(options={"IDLE_INTERVAL": 60.0, "POLL_INTERVAL": 60.0})
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # let it go idle on a 60 s wait
        message_id = outbox.enqueue(exchange, "order.placed", {})
        assert [m.message_id for m in drain_until(broker, queue, 1, timeout=10)] == [message_id]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_rabbit_outbox_command_drains_once(broker: Broker, exchange: str, queue: str) -> None:
    outbox.enqueue(exchange, "order.placed", {})
    out = io.StringIO()
    call_command("rabbit_outbox", "--once", stdout=out)
    assert out.getvalue().strip() == "Outbox relay, once: 1 published, 0 failed for good."
    assert len(drain(broker, queue)) == 1


def test_a_failing_row_holds_back_its_aggregate_until_marked_failed(
    broker: Broker, exchange: str, queue: str
) -> None:
    unbound = f"{exchange}.unbound"
    with broker.channel() as channel:
        channel.exchange_declare(unbound, "topic", auto_delete=False)
    outbox.enqueue(unbound, "order.event", {"seq": 0}, aggregate="order:8")
    second = outbox.enqueue(exchange, "order.event", {"seq": 1}, aggregate="order:8")
    other = outbox.enqueue(exchange, "order.event", {"seq": 0}, aggregate="order:9")
    relay = Relay(options={"MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0.1})
    assert relay.run_once() == 2  # order:8's head and order:9
    assert [m.message_id for m in drain(broker, queue, idle=0.2)] == [other]
    time.sleep(0.2)
    assert relay.run_once() == 1  # the head again, now failed for good
    assert OutboxMessage.objects.get(status="failed").aggregate == "order:8"
    assert relay.run_once() == 1
    assert [m.message_id for m in drain(broker, queue)] == [second]
    with broker.channel() as channel:
        channel.exchange_delete(unbound)


def test_rabbit_outbox_command_prunes_and_retries_failed(exchange: str) -> None:
    outbox.enqueue(exchange, "no.such.binding", {})
    Relay(options={"MAX_ATTEMPTS": 1}).run_once()
    out = io.StringIO()
    call_command("rabbit_outbox", "--retry-failed", stdout=out)
    call_command("rabbit_outbox", "--prune", stdout=out)
    assert out.getvalue().splitlines() == ["1 failed messages requeued.", "0 sent messages pruned."]
    assert OutboxMessage.objects.get().status == "pending"


def test_rabbit_outbox_status_shows_failed_rows_and_their_error(exchange: str) -> None:
    message_id = outbox.enqueue(exchange, "no.such.binding", {})
    Relay(options={"MAX_ATTEMPTS": 1}).run_once()
    outbox.enqueue(exchange, "later", {})
    out = io.StringIO()
    call_command("rabbit_outbox", "--status", stdout=out)
    summary, failed, *rest = out.getvalue().splitlines()
    assert (summary, rest) == ("1 pending, 0 sent, 1 failed", [])
    assert failed.startswith("failed ") and "Unroutable" in failed
    assert message_id in out.getvalue()
