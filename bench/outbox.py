"""Outbox benchmark (PostgreSQL): commit -> confirmed publish, and commit -> consume latency.

    .venv/bin/python bench/outbox.py [--rows 20000] [--rate 500] [--seconds 10]

1. Throughput: relays (separate ``manage.py rabbit_outbox`` processes, woken by
   NOTIFY) move N committed rows; timed from the commit to the last row marked
   sent, with one relay and with two. Baseline in the same run: the same
   envelopes published straight through ``publish_envelopes`` (raw pika with
   pipelined confirms), i.e. the broker's ceiling for this client.
2. Latency: one row per transaction at a steady rate, one relay; a raw pika
   consumer records when each message arrives; p50/p99 commit -> consume.
Not a test: prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

import django  # noqa: E402
import pika  # noqa: E402
import psycopg  # noqa: E402

QUEUE = "bench.outbox"


def setup() -> None:
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname='rabbitbus_bench'").fetchone():
            conn.execute("CREATE DATABASE rabbitbus_bench")
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", "rabbitbus-bench"], check=False)
    subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "set_permissions",
            "-p",
            "rabbitbus-bench",
            "guest",
            ".*",
            ".*",
            ".*",
        ],
        check=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with channel() as ch:
        ch.exchange_declare("bench", "topic", durable=True)
        ch.queue_declare(QUEUE, durable=True)
        ch.queue_bind(QUEUE, "bench", "#")


def channel():  # noqa: ANN201
    import contextlib

    @contextlib.contextmanager
    def opened():  # noqa: ANN202
        conn = pika.BlockingConnection(pika.ConnectionParameters(virtual_host="rabbitbus-bench"))
        try:
            yield conn.channel()
        finally:
            conn.close()

    return opened()


def reset() -> None:
    from rabbitbus.models import OutboxMessage

    OutboxMessage.objects.all().delete()
    with channel() as ch:
        ch.queue_purge(QUEUE)


def start_relays(count: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "manage.py", "rabbit_outbox"]
    relays = [subprocess.Popen(command, cwd=ROOT, env=dict(os.environ)) for _ in range(count)]
    time.sleep(2)  # imported, connected, LISTENing
    return relays


def stop_relays(relays: list[subprocess.Popen[bytes]]) -> None:
    for relay in relays:
        relay.send_signal(signal.SIGTERM)
    for relay in relays:
        relay.wait(30)


def messages_for(rows: int) -> list:  # noqa: ANN001
    from rabbitbus.messages import Message

    body = {"order": 0, "sku": "X" * 200}
    return [Message("bench", f"order.{n % 10}", {**body, "order": n}) for n in range(rows)]


def throughput(relay_count: int, rows: int) -> float:
    from django.db import transaction

    from rabbitbus import outbox
    from rabbitbus.models import OutboxMessage

    reset()
    relays = start_relays(relay_count)
    try:
        batch = messages_for(rows)
        with transaction.atomic():
            for start in range(0, rows, 2000):
                outbox.enqueue_many(batch[start : start + 2000])
        committed = time.perf_counter()
        while OutboxMessage.objects.filter(status="pending").exists():
            time.sleep(0.01)
        return rows / (time.perf_counter() - committed)
    finally:
        stop_relays(relays)


def raw_baseline(rows: int) -> float:
    from rabbitbus import messages, publishing
    from rabbitbus.transport import connections

    reset()
    envelopes = [messages.build(message) for message in messages_for(rows)]
    started = time.perf_counter()
    for start in range(0, rows, 500):
        publishing.publish_envelopes(envelopes[start : start + 500]).raise_first()
    elapsed = time.perf_counter() - started
    connections.close_all()
    return rows / elapsed


def latency(rate: int, seconds: int) -> list[float]:
    from django.db import transaction

    from rabbitbus import outbox

    reset()
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    total = rate * seconds
    consumer = threading.Thread(target=consume, args=(seen, total, seconds + 30), daemon=True)
    consumer.start()
    relays = start_relays(1)
    try:
        started = time.perf_counter()
        for n in range(total):
            time.sleep(max(0.0, started + n / rate - time.perf_counter()))
            with transaction.atomic():
                message_id = outbox.enqueue("bench", "order.placed", {"order": n})
            committed[message_id] = time.perf_counter()
        consumer.join(seconds + 30)
    finally:
        stop_relays(relays)
    return sorted(seen[i] - committed[i] for i in seen if i in committed)


def consume(seen: dict[str, float], total: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    with channel() as ch:
        for method, properties, _body in ch.consume(QUEUE, auto_ack=True, inactivity_timeout=1):
            if method is not None:
                seen.setdefault(properties.message_id, time.perf_counter())
            if len(seen) >= total or time.perf_counter() > deadline:
                break
        ch.cancel()


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    setup()
    raw = raw_baseline(args.rows)
    print(f"raw publish_envelopes (pika, confirms, batches of 500): {raw:8.0f} msg/s")
    for count in (1, 2):
        rate = throughput(count, args.rows)
        print(
            f"outbox, {count} relay(s), {args.rows} rows: {rate:8.0f} msg/s ({rate / raw:.2f}x raw)"
        )
    delays = latency(args.rate, args.seconds)
    p50, p99 = (percentile(delays, p) * 1000 for p in (0.5, 0.99))
    print(
        f"commit -> consume at {args.rate}/s for {args.seconds}s ({len(delays)} msgs, 1 relay): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
