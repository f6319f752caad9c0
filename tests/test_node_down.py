"""A classic queue whose cluster node is down: workers wait for it rather than exit.

RabbitMQ answers a declare of such a queue with 404 ``home node ... is down or
inaccessible``; rabbitbus raises :class:`QueueNodeDown` and the runtime tries again
with backoff, as for a broker outage (tests/test_cluster.py kills real nodes; here the
broker's refusal is played by a service, on the real broker on 5672).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rabbitbus import topology
from rabbitbus.exceptions import QueueNodeDown, TopologyConflict, TopologyError
from rabbitbus.runtime import Runtime
from tests.broker import Broker
from tests.workers import ThreadRuntime

#: What RabbitMQ 3.x says when a classic queue's node is gone.
HOME_NODE_DOWN = (
    "NOT_FOUND - home node 'rbcluster2@localhost' of durable queue 'rpc.quote' in vhost '/' "
    "is down or inaccessible"
)


def test_a_declare_refused_for_a_down_home_node_is_queue_node_down() -> None:
    queue = topology.Queue("rpc.quote", type="classic")
    error = topology.translate_error(queue, 404, HOME_NODE_DOWN)
    assert isinstance(error, QueueNodeDown) and isinstance(error, TopologyError)
    assert "home node is down" in str(error) and "rpc.quote" in str(error)
    assert type(topology.translate_error(queue, 404, "NOT_FOUND - no queue 'x'")) is TopologyError
    assert isinstance(
        topology.translate_error(queue, 406, "inequivalent arg 'x'"), TopologyConflict
    )


class NodeDownTwice:
    """A service whose queue's node is down for its first two starts."""

    name = "node-down"

    def __init__(self) -> None:
        self.starts = 0

    async def start(self, connection: Any) -> None:
        self.starts += 1
        if self.starts <= 2:
            raise topology.translate_error(topology.Queue("rpc.quote"), 404, HOME_NODE_DOWN)

    async def stop(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"processed": 0, "failed": 0, "retried": 0}


@pytest.mark.django_db(transaction=True)  # the runtime's heartbeat writes its row
def test_a_runtime_waits_for_a_down_home_node_instead_of_exiting(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rabbitbus.runtime")
    service = NodeDownTwice()
    running = ThreadRuntime(lambda: Runtime([service]))
    running.thread.start()
    try:
        assert broker.wait_for(lambda: running.ready or running.error, timeout=30)
        assert running.error is None, running.error
    finally:
        running.stop()
    assert service.starts == 3
    waits = [r.getMessage() for r in caplog.records if "home node is down" in r.getMessage()]
    assert len(waits) == 2 and all("retrying in" in message for message in waits)
