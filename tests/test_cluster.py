"""Failover on a three-node RabbitMQ cluster (issue 18), with message-id ledgers.

The module starts its own cluster with ``scripts/cluster.sh up`` (rbcluster1..3 on
127.0.0.1:5681-5683, beside the node on 5672, which is never touched) and removes it
with ``down``. Each test SIGKILLs a node (its clients' node, or the node of a quorum
queue's leader) or stops the nodes one by one, and starts them again afterwards. Every
client of one process takes the nodes in the same per-process order
(``connections.endpoint_order``), so they all sit on its first node.

Failover times (the SIGKILL to the first success on another node, per client kind)
are printed (``-s``) as ``FAILOVER kind seconds``; docs/cluster.md records them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from django.db import transaction
from django.test import override_settings

import rabbitbus
from rabbitbus import outbox, rpc, topology
from rabbitbus.conf import settings as rabbitbus_settings
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import (
    BrokerConnectionError,
    PublishError,
    RpcError,
)
from rabbitbus.messages import Message
from rabbitbus.models import OutboxMessage
from rabbitbus.outbox.relay import Relay
from rabbitbus.rpc import server as rpc_server
from rabbitbus.runtime.service import Runtime
from rabbitbus.transport import connections, declare
from tests.broker import Broker, unique
from tests.workers import ROOT, ThreadRuntime, ThreadWorker, spec

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(600),
    pytest.mark.django_db(transaction=True),  # the runtimes' heartbeats write rows
]

SCRIPT = ROOT / "scripts" / "cluster.sh"
NODES = (1, 2, 3)
#: Messages per publisher: modest, so the module stays within a few minutes here.
COUNT = 2000
PUBLISH_TIMEOUT = 5
#: Only its wait_for (a poll) is used: the cluster's vhost is "/" of nodes we own.
POLL = Broker("/")


def port(node: int) -> int:
    return 5680 + node


def url(node: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port(node)}/"


def node_number(name: str) -> int:
    """``127.0.0.1:5682`` (how rabbitbus names a node in logs) -> 2."""
    return int(name.rsplit(":", 1)[1]) - 5680


def cluster(*args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def ctl(node: int, *args: str) -> str:
    """rabbitmqctl on one of our nodes (always with -n)."""
    command = ["rabbitmqctl", "-q", "-n", f"rbcluster{node}@localhost", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[int, ...]]:
    if shutil.which("rabbitmq-server") is None:
        pytest.skip("RabbitMQ is not installed here: scripts/cluster.sh cannot start nodes")
    cluster("down")
    cluster("up")
    try:
        yield NODES
    finally:
        cluster("down")


@pytest.fixture
def healthy(nodes: tuple[int, ...]) -> Iterator[None]:
    """Three running nodes before the test, and again after it (a killed node restarted)."""
    cluster("wait", "3")
    try:
        yield
    finally:
        for node in nodes:
            cluster("start", str(node))
        cluster("wait", "3")
        connections.forget_all()


def cluster_settings(*urls: str, **options: Any) -> dict[str, Any]:
    connection = {
        "URLS": list(urls or [url(node) for node in NODES]),
        "PUBLISH_TIMEOUT": PUBLISH_TIMEOUT,
        "RECONNECT_TIMEOUT": 60,
        "CONNECTION_TIMEOUT": 3,
        "HEARTBEAT": 5,
    }
    return {"CONNECTIONS": {"default": {**connection, **options}}}


def first_node() -> int:
    """The node every connection of this process tries first."""
    return port_node(connections.endpoint_order(rabbitbus_settings.connection())[0].port)


def port_node(number: int) -> int:
    return number - 5680


def quorum_members(queue: str, node: int) -> list[str]:
    rows = json.loads(ctl(node, "list_queues", "name", "type", "members", "--formatter", "json"))
    [row] = [row for row in rows if row["name"] == queue]
    assert row["type"] == "quorum", row
    return list(row["members"])


def quorum_online(queue: str, node: int) -> list[str]:
    """The members of quorum queue ``queue`` that are online, as ``node`` sees it."""
    rows = json.loads(ctl(node, "list_queues", "name", "online", "--formatter", "json"))
    [row] = [row for row in rows if row["name"] == queue]
    return list(row["online"])


def quorum_leader(queue: str, node: int) -> int:
    """The node (1-3) that holds ``queue``'s leader, as ``node`` sees it."""
    rows = json.loads(ctl(node, "list_queues", "name", "leader", "--formatter", "json"))
    [row] = [row for row in rows if row["name"] == queue]
    return int(str(row["leader"]).split("@")[0].removeprefix("rbcluster"))


def declare_on(node: int, consumer: ConsumerSpec) -> None:
    """Declare ``consumer``'s queues through ``node``: a quorum queue's leader starts there."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port(node)))
    try:
        entities = topology.Topology()
        entities.add(*consumer.topology())
        declare.declare(connection.channel(), entities)
    finally:
        connection.close()


def drain_ids(queue: str, node: int, idle: float = 2.0) -> list[str]:
    """Every message id left in ``queue`` (read through ``node``), acked."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port(node)))
    ids: list[str] = []
    try:
        channel = connection.channel()
        for _method, properties, _body in channel.consume(queue, inactivity_timeout=idle):
            if properties is None:
                break
            ids.append(properties.message_id)
            channel.basic_ack(_method.delivery_tag)
        channel.cancel()
    finally:
        connection.close()
    return ids


class Ledger:
    """Confirmed ids (with when), failures and consumed ids, shared by threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.confirmed: dict[str, list[tuple[str, float]]] = {}
        self.failed: dict[str, list[BaseException]] = {}
        self.failed_at: dict[str, list[float]] = {}
        self.consumed: Counter[str] = Counter()
        self.consumed_at: list[float] = []
        #: kind -> (when a confirmed publish started, seconds it took)
        self.latency: dict[str, list[tuple[float, float]]] = {}

    def confirm(self, kind: str, message_id: str, started: float) -> None:
        now = time.monotonic()
        with self.lock:
            self.confirmed.setdefault(kind, []).append((message_id, now))
            self.latency.setdefault(kind, []).append((started, now - started))

    def fail(self, kind: str, error: BaseException) -> None:
        with self.lock:
            self.failed.setdefault(kind, []).append(error)
            self.failed_at.setdefault(kind, []).append(time.monotonic())

    def consume(self, message_id: str) -> None:
        with self.lock:
            self.consumed[message_id] += 1
            self.consumed_at.append(time.monotonic())

    def count(self, kind: str) -> int:
        return len(self.confirmed.get(kind, []))

    def ids(self) -> set[str]:
        return {mid for rows in self.confirmed.values() for mid, _ in rows}

    def recovered_after(self, kind: str, moment: float) -> float | None:
        """Seconds from ``moment`` (the kill) to the first confirm after the last failure
        (or after ``moment`` when none failed)."""
        since = max([moment, *self.failed_at.get(kind, [])])
        after = [at for _, at in self.confirmed.get(kind, []) if at > since]
        return min(after) - moment if after else None


def report(kind: str, seconds: float | None) -> None:
    print(f"FAILOVER {kind} {'none' if seconds is None else f'{seconds:.2f}'}")


def numbers(count: int | None) -> Iterator[int]:
    """0 .. count-1, or without end when count is None (until stopped)."""
    return iter(range(count)) if count is not None else itertools.count()


def sync_publisher(
    ledger: Ledger, queue: str, stop: threading.Event, *, count: int | None = COUNT,
    pause: float = 0.0,
) -> None:  # fmt: skip
    """Publish ``count`` messages (or until stopped), ``pause`` seconds apart."""
    for n in numbers(count):
        if stop.wait(pause):
            break
        started = time.monotonic()
        try:
            ledger.confirm("sync", rabbitbus.publish("", queue, {"n": n, "by": "sync"}), started)
        except (BrokerConnectionError, PublishError) as exc:
            ledger.fail("sync", exc)
    connections.close_all()


def async_publisher(
    ledger: Ledger, queue: str, stop: threading.Event, *, count: int | None = COUNT,
    pause: float = 0.0,
) -> None:  # fmt: skip
    """The same as sync_publisher, with apublish on its own event loop."""

    async def run() -> None:
        for n in numbers(count):
            if stop.is_set():
                break
            await asyncio.sleep(pause)
            started = time.monotonic()
            try:
                message_id = await rabbitbus.apublish("", queue, {"n": n, "by": "a"})
                ledger.confirm("async", message_id, started)
            except (BrokerConnectionError, PublishError) as exc:
                ledger.fail("async", exc)
        await connections.aclose_all()

    asyncio.run(run())


def threads(*targets: Callable[[], None]) -> list[threading.Thread]:
    started = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in started:
        thread.start()
    return started


def publish_and_kill(
    ledger: Ledger, queue: str, stop: threading.Event, victim: int
) -> tuple[list[threading.Thread], float]:
    """Start a sync and an async publisher of COUNT messages each to ``queue``; SIGKILL
    node ``victim`` a quarter of the way through. Returns the publishers and the kill time."""
    running = threads(
        lambda: sync_publisher(ledger, queue, stop),
        lambda: async_publisher(ledger, queue, stop),
    )
    assert POLL.wait_for(
        lambda: ledger.count("sync") >= COUNT // 4 and ledger.count("async") >= 200, timeout=120
    )
    killed_at = time.monotonic()
    cluster("kill", str(victim))
    return running, killed_at


def assert_every_publish_returned(ledger: Ledger, failures: Counter[str]) -> None:
    """Every publish returned confirmed or a documented error (a nack: not taken), and
    every confirmed id was consumed."""
    assert ledger.ids() <= set(ledger.consumed)  # no confirmed message lost
    assert len(ledger.ids()) + sum(failures.values()) == 2 * COUNT
    assert set(failures) <= {"NotConfirmed", "BrokerUnavailable", "PublishTimeout"}, failures


@pytest.mark.usefixtures("healthy")
def test_killing_the_node_of_two_publishers_and_a_worker_loses_no_confirmed_message() -> None:
    """(a) A sync publisher, an async publisher and a worker on one node, publishing
    2 x 2,000 confirmed messages to a quorum queue replicated on all three nodes; that
    node is SIGKILLed mid-run. Every confirmed id is consumed; duplicates are counted."""
    queue = unique("cluster.a")
    ledger = Ledger()
    stop = threading.Event()
    with override_settings(RABBITBUS=cluster_settings()):
        victim = first_node()
        # attempts=1: no retry tiers. Retry queues are classic (one home node): a worker whose
        # retry queue lived on the killed node could not declare its topology until that
        # node is back (docs/cluster.md).
        handler = spec(queue, lambda m: ledger.consume(m.message_id), prefetch=50, attempts=1)
        worker = ThreadWorker(handler)
        with worker.start(POLL):
            assert worker.runtime is not None
            assert node_number(worker.runtime.node) == victim
            others = [node for node in NODES if node != victim]
            assert len(quorum_members(queue, others[0])) == 3
            try:
                running, killed_at = publish_and_kill(ledger, queue, stop, victim)
                assert POLL.wait_for(
                    lambda: worker.ready and node_number(worker.runtime.node) != victim, 60
                )
                worker_back = time.monotonic() - killed_at
                assert POLL.wait_for(lambda: ledger.count("sync") > COUNT // 4 + 50, 60), (
                    ledger.failed
                )
                for thread in running:
                    thread.join(240)
                assert not any(thread.is_alive() for thread in running)
                assert ledger.count("sync") + ledger.count("async") < 2 * COUNT + 1
                assert POLL.wait_for(lambda: set(ledger.consumed) >= ledger.ids(), timeout=120)
                moved_to = node_number(worker.runtime.node)
            finally:
                stop.set()
    report("sync-publisher", ledger.recovered_after("sync", killed_at))
    report("async-publisher", ledger.recovered_after("async", killed_at))
    report("worker", worker_back)
    duplicates = sum(count - 1 for count in ledger.consumed.values())
    failures = Counter(type(e).__name__ for errors in ledger.failed.values() for e in errors)
    print(f"cluster (a): confirmed {len(ledger.ids())}, failed {dict(failures)}, "
          f"duplicates consumed {duplicates}, worker moved to node {moved_to}")  # fmt: skip
    assert moved_to != victim
    assert_every_publish_returned(ledger, failures)


def applied(consumer: str) -> Counter[str]:
    """How many times the idempotent handler of ``consumer`` applied each message id."""
    from tests.testapp.models import Effect

    return Counter(Effect.objects.filter(consumer=consumer).values_list("message_id", flat=True))


@pytest.mark.usefixtures("healthy")
def test_killing_the_quorum_leader_loses_nothing_and_applies_each_effect_once() -> None:
    """(a') The quorum queue's leader on a node none of the clients is connected to, which
    is SIGKILLed mid-run: the queue elects a new leader on the two nodes left, every
    confirmed id is consumed, and an idempotent worker applies each one exactly once."""
    from tests.testapp.models import Effect

    queue = unique("cluster.leader")
    ledger = Ledger()
    stop = threading.Event()
    with override_settings(RABBITBUS=cluster_settings()):
        clients = first_node()
        victim = next(node for node in NODES if node != clients)

        def apply(message: Any) -> None:
            Effect.objects.create(consumer=queue, message_id=message.message_id)
            ledger.consume(message.message_id)

        handler = spec(queue, apply, prefetch=50, attempts=1, idempotent=True)
        declare_on(victim, handler)
        assert quorum_leader(queue, clients) == victim
        with ThreadWorker(handler).start(POLL) as worker:
            assert worker.runtime is not None and node_number(worker.runtime.node) == clients
            try:
                running, killed_at = publish_and_kill(ledger, queue, stop, victim)
                for thread in running:
                    thread.join(240)
                assert not any(thread.is_alive() for thread in running)
                new_leader = quorum_leader(queue, clients)
                assert POLL.wait_for(lambda: set(ledger.consumed) >= ledger.ids(), timeout=120)
                consumed_at = time.monotonic()
                # Settle: redeliveries of messages in flight at the kill, if any, land now.
                assert POLL.wait_for(lambda: time.monotonic() - consumed_at > 3, 10)
                # The worker never moved: its node was not the one killed.
                assert worker.ready and node_number(worker.runtime.node) == clients
                counts = worker.stats()
            finally:
                stop.set()
        effects = applied(queue)
    report("sync-publisher (leader killed)", ledger.recovered_after("sync", killed_at))
    report("async-publisher (leader killed)", ledger.recovered_after("async", killed_at))
    failures = Counter(type(e).__name__ for errors in ledger.failed.values() for e in errors)
    print(f"cluster (a'): confirmed {len(ledger.ids())}, failed {dict(failures)}, "
          f"worker {counts}, leader moved from node {victim} to {new_leader}")  # fmt: skip
    assert new_leader != victim
    assert_every_publish_returned(ledger, failures)
    assert ledger.ids() <= set(effects)
    assert set(effects.values()) == {1}, [mid for mid, n in effects.items() if n > 1]


#: Publishes per second and per publisher under the rolling restart: a steady load.
STEADY_PAUSE = 0.01


def latencies(rows: list[tuple[float, float]], since: float, until: float) -> str:
    """p50, p99 and max (ms) of the publishes started between ``since`` and ``until``."""
    took = sorted(seconds * 1000 for started, seconds in rows if since <= started < until)
    if not took:
        return "none"
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    return (f"n={len(took)} p50={statistics.median(took):.1f}ms p99={p99:.1f}ms "
            f"max={took[-1]:.1f}ms")  # fmt: skip


@pytest.mark.usefixtures("healthy")
def test_a_rolling_restart_under_steady_load_loses_nothing_and_stops_no_process() -> None:
    """(e) The three nodes stopped and started one at a time (the cluster healthy again
    between them) while a sync and an async publisher publish steadily to a quorum queue
    and a worker consumes it: every confirmed id is consumed, every publisher and the
    worker still run at the end, and publish latency before and during the restart is
    printed (``ROLLING``), not asserted."""
    queue = unique("cluster.rolling")
    ledger = Ledger()
    stop = threading.Event()
    moves: list[int] = []
    with override_settings(RABBITBUS=cluster_settings()):
        handler = spec(queue, lambda m: ledger.consume(m.message_id), prefetch=50, attempts=1)
        declare_on(first_node(), handler)
        with ThreadWorker(handler).start(POLL) as worker:
            assert worker.runtime is not None
            running = threads(
                lambda: sync_publisher(ledger, queue, stop, count=None, pause=STEADY_PAUSE),
                lambda: async_publisher(ledger, queue, stop, count=None, pause=STEADY_PAUSE),
            )
            try:
                assert POLL.wait_for(lambda: min(map(ledger.count, ("sync", "async"))) >= 100, 60)
                restart_began = time.monotonic()
                for node in NODES:
                    cluster("stop", str(node))
                    cluster("start", str(node))
                    cluster("wait", "3")
                    moves.append(node_number(worker.runtime.node))
                    # Every member of the queue back before the next node goes.
                    assert POLL.wait_for(lambda n=node: len(quorum_online(queue, n)) == 3, 60)
                    counts = (ledger.count("sync"), ledger.count("async"))
                    assert POLL.wait_for(
                        lambda c=counts: (
                            ledger.count("sync") > c[0] + 20 and ledger.count("async") > c[1] + 20
                        ),
                        60,
                    ), f"publishing did not go on after node {node} came back: {ledger.failed}"
                restart_ended = time.monotonic()
                assert POLL.wait_for(lambda: time.monotonic() - restart_ended > 3, 10)
            finally:
                stop.set()
                for thread in running:
                    thread.join(120)
            assert not any(thread.is_alive() for thread in running), "a publisher hangs"
            assert worker.thread.is_alive() and worker.error is None, worker.error
            assert POLL.wait_for(lambda: worker.ready, 60), "the worker did not come back"
            assert POLL.wait_for(lambda: set(ledger.consumed) >= ledger.ids(), timeout=120)
    before = (restart_began - 3600, restart_began)
    for kind in ("sync", "async"):
        rows = ledger.latency.get(kind, [])
        print(f"ROLLING {kind} before: {latencies(rows, *before)}")
        print(f"ROLLING {kind} during: {latencies(rows, restart_began, restart_ended)}")
    failures = Counter(type(e).__name__ for errors in ledger.failed.values() for e in errors)
    duplicates = sum(count - 1 for count in ledger.consumed.values())
    print(f"cluster (e): confirmed {len(ledger.ids())}, failed {dict(failures)}, "
          f"duplicates consumed {duplicates}, worker on nodes {moves} after each restart, "
          f"restart took {restart_ended - restart_began:.1f}s")  # fmt: skip
    assert ledger.ids() <= set(ledger.consumed)  # no confirmed message lost
    assert set(failures) <= {"NotConfirmed", "BrokerUnavailable", "PublishTimeout"}, failures


def rpc_runtime(alias: str) -> ThreadRuntime:
    return ThreadRuntime(
        lambda: Runtime(rpc_server.services(["test.echo"], prefetch=20), alias=alias), kind="rpc"
    )


@pytest.mark.usefixtures("healthy")
def test_rpc_servers_on_two_nodes_answer_or_fail_as_documented_when_one_dies() -> None:
    """(b) An RPC server on each of two nodes, callers in flight, one node killed: every
    call is answered or raises an RpcError or BrokerConnectionError within its timeout,
    and the calls after it are answered."""
    with override_settings(RABBITBUS=cluster_settings()):
        order = connections.endpoint_order(rabbitbus_settings.connection())
        victim, survivor = port_node(order[0].port), port_node(order[1].port)
    # The second server's URLS leave the victim out: it stays on the survivor.
    both = cluster_settings()
    both["CONNECTIONS"]["other"] = cluster_settings(url(survivor), url(6 - victim - survivor))[
        "CONNECTIONS"
    ]["default"]
    outcomes: list[tuple[str, float, float]] = []  # (outcome, seconds taken, started at)
    lock = threading.Lock()
    stop = threading.Event()
    timeout = 10.0

    def caller(n: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                rpc.call("test.echo", n, timeout=timeout)
                outcome = "answered"
            except (RpcError, BrokerConnectionError) as exc:
                outcome = type(exc).__name__
            took = time.monotonic() - started
            with lock:
                outcomes.append((outcome, took, started))

    # The request queue (classic: one home node) on the survivor; a classic queue whose
    # node dies is gone until that node is back (docs/cluster.md).
    declare = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port(survivor)))
    declare.channel().queue_declare(
        rpc.queue_name("test.echo"), durable=True, arguments={"x-queue-type": "classic"}
    )
    declare.close()
    with override_settings(RABBITBUS=both):
        servers = [rpc_runtime("default").start(POLL), rpc_runtime("other").start(POLL)]
        try:
            homes = [node_number(server.runtime.node) for server in servers if server.runtime]
            assert homes == [victim, survivor]
            callers = threads(*[lambda n=n: caller(n) for n in range(4)])
            assert POLL.wait_for(lambda: len(outcomes) >= 100, timeout=60)
            killed_at = time.monotonic()
            before = len(outcomes)
            cluster("kill", str(victim))
            # Answers again after the kill: one more round from every caller.
            assert POLL.wait_for(
                lambda: [o for o, _, _ in outcomes[before:]].count("answered") >= 20, timeout=90
            )
            # The first call started after the kill and answered: when it ended.
            answered_again = min(
                started + took - killed_at
                for outcome, took, started in outcomes[before:]
                if outcome == "answered" and started > killed_at
            )
            stop.set()
            for thread in callers:
                thread.join(timeout + 30)
            assert rpc.call("test.echo", "after", timeout=timeout) == {
                "args": ["after"],
                "kwargs": {},
            }
            moved = servers[0].runtime.node if servers[0].runtime else ""
        finally:
            stop.set()
            for server in servers:
                server.stop()
    report("rpc-caller+server", answered_again)
    errors = Counter(outcome for outcome, _, _ in outcomes if outcome != "answered")
    print(f"cluster (b): {len(outcomes)} calls, errors {dict(errors)}, server moved to {moved}")
    assert node_number(moved) != victim
    # Every call ended within its timeout plus the reconnect of the call's connection.
    assert max(took for _, took, _ in outcomes) < timeout + 60
    documented = {
        "RpcTimeout",
        "NoServer",
        "RpcNotSent",
        "BrokerConnectionError",
        "BrokerUnavailable",
    }
    assert set(errors) <= documented


@pytest.mark.usefixtures("healthy")
def test_the_relay_on_the_killed_node_publishes_every_row() -> None:
    """(c) 2,000 outbox rows; the node the relay publishes to is SIGKILLed mid-way:
    every row ends sent and every row's message is in the (quorum) queue."""
    queue = unique("cluster.c")
    with override_settings(RABBITBUS=cluster_settings()):
        victim = first_node()
        other = next(node for node in NODES if node != victim)
        declare = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port(other)))
        declare.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        declare.close()
        with transaction.atomic():
            ids = set(outbox.enqueue_many([Message("", queue, {"n": n}) for n in range(COUNT)]))
        relay = Relay(options={"BATCH_SIZE": 50})
        relay.run_once()
        assert node_number(connections.get_sync().node) == victim
        killed_at = time.monotonic()
        cluster("kill", str(victim))
        moved_at = None
        deadline = time.monotonic() + 180
        while OutboxMessage.objects.exclude(status="sent").exists():
            assert time.monotonic() < deadline, "rows left unsent"
            try:
                if relay.run_once() and moved_at is None:
                    moved_at = time.monotonic() - killed_at
            except BrokerConnectionError:
                time.sleep(0.2)
        moved = connections.get_sync().node
        connections.close_all()
    report("relay", moved_at)
    stored = drain_ids(queue, other)
    print(f"cluster (c): rows {len(ids)}, stored {len(stored)}, relay moved to {moved}")
    assert node_number(moved) != victim
    assert ids <= set(stored)


@pytest.mark.usefixtures("healthy")
def test_two_nodes_down_publishes_fail_clearly_and_resume_when_one_is_back() -> None:
    """(d) Two of three nodes down (the quorum queue lost its majority): a publish
    raises a clear error within PUBLISH_TIMEOUT (plus the connect), nothing confirmed
    is lost, and publishing resumes once one node is back."""
    queue = unique("cluster.d")
    confirmed: list[str] = []
    with override_settings(RABBITBUS=cluster_settings()):
        declare = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port(1)))
        declare.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        declare.close()
        confirmed += [rabbitbus.publish("", queue, {"n": n}) for n in range(100)]
        victims = [first_node(), next(n for n in NODES if n != first_node())]
        survivor = 6 - sum(victims)
        for victim in victims:
            cluster("kill", str(victim))
        errors = []
        for n in range(3):
            started = time.monotonic()
            with pytest.raises((PublishError, BrokerConnectionError)) as raised:
                rabbitbus.publish("", queue, {"during": n})
            took = time.monotonic() - started
            errors.append((type(raised.value).__name__, str(raised.value), round(took, 1)))
            # Bounded: one PUBLISH_TIMEOUT plus at most a connect to each node.
            assert took < PUBLISH_TIMEOUT + 3 * 3 + 2, errors
        assert node_number(connections.get_sync().node) == survivor
        back_at = time.monotonic()
        cluster("start", str(victims[0]))
        resumed = None
        while resumed is None:
            assert time.monotonic() - back_at < 120, "publishing did not resume"
            try:
                confirmed.append(rabbitbus.publish("", queue, {"after": True}))
                resumed = time.monotonic() - back_at
            except (PublishError, BrokerConnectionError):
                time.sleep(0.2)
        confirmed += [rabbitbus.publish("", queue, {"n": n}) for n in range(100)]
        connections.close_all()
    print(f"cluster (d): errors while 2 of 3 down: {errors}")
    print(f"cluster (d): publishing resumed {resumed:.1f}s after a node was started again")
    stored = drain_ids(queue, survivor)
    assert set(confirmed) <= set(stored)
