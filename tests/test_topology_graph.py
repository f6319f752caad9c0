"""rabbitbus.monitoring.topology_graph: what the topology page draws."""

from __future__ import annotations

from rabbitbus import topology
from rabbitbus.consuming import registry
from rabbitbus.monitoring.topology_graph import build


def consumer_topology() -> topology.Topology:
    """The topology one consumer of ``work`` (bound to ``shop``) registers: queue, retries, DLQ."""
    spec = registry.ConsumerSpec(
        name="app.rabbit.work", handler=print, queue="work", bindings=(("shop", "order.*"),),
        attempts=3, backoff=(1.0, 60.0),
    )  # fmt: skip
    known = topology.Topology()
    known.add(topology.Exchange("shop"), *spec.topology(), topology.Queue("rpc.fib", "classic"))
    return known


def test_each_work_queue_is_followed_by_its_retries_shortest_first_then_its_dlq() -> None:
    graph = build(consumer_topology(), {"app.rabbit.work": "work"}, {"fib": "rpc.fib"})
    rows = [(q["name"], q["kind"], q["parent"]) for q in graph["queues"]]
    assert rows == [
        ("rpc.fib", "rpc", None),
        ("work", "work", None),
        ("work.retry.1000", "retry", "work"),
        ("work.retry.2000", "retry", "work"),
        ("work.dlq", "dead-letter", "work"),
    ]


def test_bindings_and_handlers_link_exchanges_queues_and_code() -> None:
    graph = build(consumer_topology(), {"app.rabbit.work": "work"}, {"fib": "rpc.fib"})
    assert graph["exchanges"] == [{"name": "shop", "type": "topic"}]
    assert graph["bindings"] == [
        {"exchange": "shop", "queue": "work", "key": "order.*", "source": "registry"}
    ]
    assert graph["handlers"] == [
        {"name": "app.rabbit.work", "kind": "consumer", "queue": "work", "connected": None},
        {"name": "fib", "kind": "procedure", "queue": "rpc.fib", "connected": None},
    ]


def test_handlers_say_how_many_consumers_the_broker_sees() -> None:
    consumers, procedures = {"app.rabbit.work": "work"}, {"fib": "rpc.fib"}
    graph = build(consumer_topology(), consumers, procedures, [], {"work": 2})
    assert [h["connected"] for h in graph["handlers"]] == [2, None]


def test_the_brokers_bindings_of_known_queues_are_added() -> None:
    def bound(source: str, queue: str, key: str) -> dict[str, str]:
        return {
            "source": source,
            "destination": queue,
            "destination_type": "queue",
            "routing_key": key,
        }

    broker = [
        bound("audit", "work", "#"),
        bound("", "work", "work"),  # the default exchange's implicit binding
        bound("shop", "elsewhere", "order.*"),  # not a queue rabbitbus knows
        bound("shop", "work", "order.*"),  # known already
    ]
    graph = build(consumer_topology(), {}, {}, broker)
    found = {(b["exchange"], b["queue"], b["key"], b["source"]) for b in graph["bindings"]}
    assert found == {("audit", "work", "#", "broker"), ("shop", "work", "order.*", "registry")}
    assert {"name": "audit", "type": "?"} in graph["exchanges"]
