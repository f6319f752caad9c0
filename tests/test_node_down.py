"""A classic queue whose cluster node is down: workers wait for it rather than exit.

RabbitMQ answers a declare of such a queue with 404 ``home node ... is down or
inaccessible``; rabbitbus raises :class:`QueueNodeDown` and the runtime tries again
with backoff, as for a broker outage (tests/test_cluster.py kills real nodes; here the
broker's refusal is played by a service, on the real broker on 5672).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from rabbitbus import topology
from rabbitbus.exceptions import QueueNodeDown, TopologyConflict, TopologyError
from rabbitbus.runtime.service import Runtime
from rabbitbus.transport import declare
from tests.broker import Broker
from tests.workers import ThreadRuntime

#: What RabbitMQ 3.x says when a classic queue's node is gone.
HOME_NODE_DOWN = (
    "NOT_FOUND - home node 'rbcluster2@localhost' of durable queue 'rpc.quote' in vhost '/' "
    "is down or inaccessible"
)


def node_down() -> BaseException:
    return topology.translate_error(topology.Queue("rpc.quote"), 404, HOME_NODE_DOWN)


def serve_until_ready(broker: Broker, service: FailingStarts) -> None:
    running = ThreadRuntime(lambda: Runtime([service]))
    running.thread.start()
    try:
        assert broker.wait_for(lambda: running.ready or running.error, timeout=60)
        assert running.error is None, running.error
    finally:
        running.stop()


def test_a_declare_refused_for_a_down_home_node_is_queue_node_down() -> None:
    queue = topology.Queue("rpc.quote", type="classic")
    error = topology.translate_error(queue, 404, HOME_NODE_DOWN)
    assert isinstance(error, QueueNodeDown) and isinstance(error, TopologyError)
    assert "home node is down" in str(error) and "rpc.quote" in str(error)
    assert type(topology.translate_error(queue, 404, "NOT_FOUND - no queue 'x'")) is TopologyError
    assert isinstance(
        topology.translate_error(queue, 406, "inequivalent arg 'x'"), TopologyConflict
    )


class FailingStarts:
    """A service whose first ``times`` starts raise ``error()``."""

    name = "failing-starts"

    def __init__(self, error: Callable[[], BaseException], times: int) -> None:
        self.error = error
        self.times = times
        self.starts = 0

    async def start(self, connection: Any) -> None:
        self.starts += 1
        if self.starts <= self.times:
            raise self.error()

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
    caplog.set_level(logging.WARNING, logger="rabbitbus.runtime.service")
    service = FailingStarts(node_down, times=2)
    serve_until_ready(broker, service)
    assert service.starts == 3
    waits = [r.getMessage() for r in caplog.records if "home node is down" in r.getMessage()]
    assert len(waits) == 2 and all("retrying in" in message for message in waits)


@pytest.mark.django_db(transaction=True)
def test_a_runtime_whose_services_keep_failing_to_start_backs_off(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that takes the connection but fails every consume (a quorum queue electing
    a leader answered INTERNAL_ERROR in tests/test_cluster.py) made the runtime reconnect
    in a tight loop, a WARNING each time: now one WARNING, then INFO, each try backed off."""
    caplog.set_level(logging.INFO, logger="rabbitbus.runtime.service")
    service = FailingStarts(lambda: ConnectionError("INTERNAL_ERROR"), times=3)
    serve_until_ready(broker, service)
    assert service.starts == 4
    tries = [r for r in caplog.records if r.getMessage().startswith("Could not start consuming")]
    assert [r.levelname for r in tries] == ["WARNING", "INFO", "INFO"]
    assert all("INTERNAL_ERROR); reconnecting in " in r.getMessage() for r in tries)


def test_aiormq_refusals_keep_their_reply_code() -> None:
    """aiormq raises ``ChannelNotFoundEntity(text)`` for a 404 (no code in it): read as
    code 0, a real node-down refusal made the worker exit instead of waiting (found with
    the demo on a cluster)."""
    import aiormq.exceptions

    queue = topology.Queue("orders.saga.retry.200", type="classic")
    refused = aiormq.exceptions.ChannelNotFoundEntity(HOME_NODE_DOWN)
    assert declare.aiormq_reply(refused) == (404, HOME_NODE_DOWN)
    assert isinstance(
        topology.translate_error(queue, *declare.aiormq_reply(refused)), QueueNodeDown
    )
    conflict = aiormq.exceptions.ChannelPreconditionFailed(
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"
    )
    assert declare.aiormq_reply(conflict)[0] == 406
    assert declare.aiormq_reply(aiormq.exceptions.ChannelClosed(320, "CONNECTION_FORCED")) == (
        320,
        "CONNECTION_FORCED",
    )


class ClosingConnection:
    """A runtime's connection whose aiormq connection (``transport.connection``, here the
    same object) is closing: opening a channel raises a bare Exception, as aiormq does
    then (seen with a cluster node SIGKILLed under the demo)."""

    def __init__(self) -> None:
        self.closed_with: BaseException | None = None
        self.transport = SimpleNamespace(connection=self)

    async def channel(self, publisher_confirms: bool = True) -> Any:
        raise Exception  # noqa: TRY002 - what aiormq raises

    async def close(self, exc: BaseException | None = None) -> None:
        self.closed_with = exc


async def test_a_consumer_that_cannot_open_a_channel_again_hands_over_to_the_runtime(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rabbitbus.consuming.worker import ConsumerService
    from tests.workers import spec

    service = ConsumerService(spec("q.resubscribe", lambda message: None))
    connection = ClosingConnection()
    await service._resubscribe(connection)  # no "Task exception was never retrieved"
    assert type(connection.closed_with) is Exception
    assert any("Could not consume q.resubscribe again" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)  # the server's heartbeat writes its row
def test_an_rpc_server_whose_queue_vanishes_serves_again(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A classic RPC queue whose node dies (or that someone deletes) cancels the server's
    consumer. The server used to serve nothing from then on (callers got NoServer even
    after the node was back; found with the demo on a cluster): it now reconnects,
    declares the queue again and serves."""
    from rabbitbus import rpc
    from tests.rpc_support import serving

    caplog.set_level(logging.WARNING, logger="rabbitbus.rpc.server")
    queue = rpc.queue_name("test.echo")
    with serving("test.echo"):
        assert rpc.call("test.echo", 1, timeout=10) == {"args": [1], "kwargs": {}}
        with broker.channel() as channel:
            channel.queue_delete(queue)
        assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, 30)
        assert rpc.call("test.echo", 2, timeout=10) == {"args": [2], "kwargs": {}}
    assert any("cancelled by the broker" in r.getMessage() for r in caplog.records)
