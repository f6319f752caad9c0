"""Shared helpers for the bench scripts: Django setup, timing, topology, tables.

Benches compare rabbitbus with a raw client *in the same run*, interleaving
rounds (A B, B A, ...) and reporting medians, because absolute figures on a
shared machine drift far more than the ratio between two contenders.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

BROKER_URL = os.environ.get("RABBITBUS_BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")
CONTENT_TYPE = "application/json"
PERSISTENT = 2


def setup_django(url: str = BROKER_URL, **extra: Any) -> None:
    """Configure minimal Django settings with rabbitbus installed, then ``django.setup()``."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["rabbitbus"],
            RABBITBUS={
                "CONNECTIONS": {"default": {"URL": url}},
                # RABBITBUS_BENCH_FAST_PATHS=off: the drivers' public API alone (issue 15).
                "FAST_PATHS": os.environ.get("RABBITBUS_BENCH_FAST_PATHS", "on") != "off",
            },
            **extra,
        )
    django.setup()


def sample_payload(index: int = 0) -> dict[str, Any]:
    """A realistic JSON payload that encodes to roughly 200 bytes."""
    return {
        "event": "order.created",
        "order_id": 100000 + index,
        "customer": {"id": 4242, "email": "customer@example.com", "country": "FR"},
        "lines": [{"sku": "SKU-0001", "qty": 2, "price": "19.90"}],
        "total": "39.80",
        "created_at": "2026-11-23T09:00:00+00:00",
    }


def encode(payload: Any) -> bytes:
    """Compact JSON, as a raw-client application would send it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def rate(count: int, work: Callable[[], Any]) -> float:
    """Run ``work`` once and return ``count`` divided by its wall-clock seconds."""
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Topology:
    """A fresh topic exchange and a durable queue bound to it with ``#``."""

    exchange: str
    queue: str
    routing_key: str = "bench.message"
    channel: Any = field(default=None, repr=False)

    def purge(self) -> None:
        self.channel.queue_purge(self.queue)

    def depth(self) -> int:
        return self.channel.queue_declare(self.queue, passive=True).method.message_count


@contextmanager
def fresh_topology(prefix: str, url: str = BROKER_URL) -> Iterator[Topology]:
    """Declare ``<prefix>.<random>`` exchange and queue; delete both on exit, even on error."""
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    topology = Topology(exchange=name, queue=name, channel=channel)
    try:
        channel.exchange_declare(name, exchange_type="topic", durable=True)
        channel.queue_declare(name, durable=True)
        channel.queue_bind(name, name, routing_key="#")
        yield topology
    finally:
        with suppress(pika.exceptions.AMQPError):
            connection.close()
        _delete(url, name)


def _delete(url: str, name: str, patience: float = 30.0) -> None:
    """Delete on a new connection (the setup one may be dead), retrying while the
    broker restarts: a durable queue left behind would outlive the bench."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with pika.BlockingConnection(pika.URLParameters(url)) as connection:
                channel = connection.channel()
                channel.queue_delete(name)
                channel.exchange_delete(name)
            return
        except pika.exceptions.AMQPError:
            if time.monotonic() >= deadline:
                print(f"could not delete exchange and queue {name!r}", file=sys.stderr)
                raise
            time.sleep(1.0)


@dataclass
class Contender:
    """One side of a comparison: a name, a message count and ``run(count)`` doing the work."""

    name: str
    count: int
    run: Callable[[int], Any]
    rates: list[float] = field(default_factory=list)


def interleave(
    contenders: Sequence[Contender],
    rounds: int,
    before: Callable[[], Any] = lambda: None,
    after: Callable[[Contender], Any] = lambda _: None,
    warmup: int = 100,
) -> None:
    """Warm every contender up, then time each once per round, reversing the order every
    other round (A B, B A, ...) so neither side always follows the other.

    ``before`` runs ahead of every run (e.g. a purge); ``after`` checks each timed run.
    """
    for contender in contenders:
        before()
        contender.run(min(warmup, contender.count))
    for round_number in range(rounds):
        order = contenders if round_number % 2 == 0 else list(reversed(contenders))
        for contender in order:
            before()
            contender.rates.append(rate(contender.count, lambda c=contender: c.run(c.count)))
            after(contender)
        print(f"  round {round_number + 1}/{rounds} done (load {load_average()})", flush=True)


@dataclass
class Row:
    """One line of a result table; ``target`` is the minimum acceptable ratio, if any."""

    scenario: str
    raw: float
    ours: float
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.raw

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        return "PASS" if self.ratio >= self.target else "MISS"


def format_table(rows: Sequence[Row], raw_label: str = "raw msg/s") -> str:
    """A Markdown table of the rows (also readable in a terminal)."""
    lines = [
        f"| scenario | {raw_label} | rabbitbus msg/s | ratio | target | result |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        target = f">= {row.target:.2f}" if row.target is not None else "-"
        lines.append(
            f"| {row.scenario} | {row.raw:,.0f} | {row.ours:,.0f} | {row.ratio:.2f} "
            f"| {target} | {row.verdict} |"
        )
    return "\n".join(lines)


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the values, to show how noisy the rounds were."""
    return f"{min(values):,.0f}-{max(values):,.0f}" if values else "-"


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def versions(*packages: str) -> str:
    """``name version`` for Python and each installed distribution."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = [f"CPython {platform.python_version()}"]
    for package in packages:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def broker_version(url: str = BROKER_URL) -> str:
    """The RabbitMQ version the broker announces on connect."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        server = connection._impl.server_properties
    raw = server.get("version", b"?")
    return raw.decode() if isinstance(raw, bytes) else str(raw)
