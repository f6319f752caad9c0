"""A broker restart under a running worker. Marked ``fault``: run serially, last."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rabbitbus import publish_many
from rabbitbus.messages import Message, ReceivedMessage
from tests.broker import Broker, unique
from tests.workers import ThreadWorker, spec

pytestmark = pytest.mark.fault


def test_a_broker_restart_mid_stream_loses_nothing_and_consumers_come_back(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    seen: set[str | None] = set()

    async def slowish(message: ReceivedMessage) -> None:
        await asyncio.sleep(0.005)
        seen.add(message.message_id)

    queue = unique("wf.restart")
    caplog.set_level(logging.WARNING, logger="rabbitbus.runtime.service")
    with ThreadWorker(spec(queue, slowish, prefetch=20, concurrency=5)).start(broker) as worker:
        ids = set(publish_many([Message("", queue, {"n": n}) for n in range(3000)]).confirmed)
        assert len(ids) == 3000
        assert broker.wait_for(lambda: len(seen) >= 300, timeout=30)
        broker.restart_app()
        assert broker.wait_for(lambda: seen >= ids, timeout=90)
        assert broker.wait_for(lambda: broker.consumers(queue) == 1, timeout=30)
        assert worker.runtime is not None and worker.runtime.reconnects >= 1
    reconnect_lines = [r for r in caplog.records if r.name == "rabbitbus.runtime.service"]
    assert all(record.exc_info is None for record in reconnect_lines)  # no traceback flood
