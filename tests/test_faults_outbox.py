"""Broker stopped while orders commit, then started: every message is delivered."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import override_settings

import rabbitbus
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox.relay import Relay
from rabbitbus.transport import connections
from tests.broker import AMQP_PORT, Broker, ctl
from tests.consuming import drain_until

pytestmark = [pytest.mark.fault, pytest.mark.django_db(transaction=True)]


def test_messages_committed_while_the_broker_is_stopped_are_all_delivered(
    broker: Broker, exchange: str, queue: str
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{django_settings.TEST_VHOST}"
    fast = {"URL": url, "RECONNECT_TIMEOUT": 1, "CONNECTION_TIMEOUT": 1}
    with override_settings(RABBITBUS={"CONNECTIONS": {"default": fast}}):
        rabbitbus.publish(exchange, "warm.up", {})  # an open connection, about to die
        ctl("stop_app")
        try:
            ids = []
            for n in range(5):
                with transaction.atomic():
                    ids.append(rabbitbus.publish_on_commit(exchange, "order.placed", {"n": n}))
        finally:
            ctl("start_app")
            ctl("await_startup")
        assert OutboxMessage.objects.filter(status="pending").count() == 5
        connections.forget_all()
        relay = Relay()
        while relay.run_once():
            pass
    delivered = drain_until(broker, queue, 6)
    assert {m.message_id for m in delivered} >= set(ids)
