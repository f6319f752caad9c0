"""Worker throughput beside raw clients, measured in one run. Not a test.

    .venv/bin/python bench/worker.py [--messages 20000]

Each scenario drains a pre-filled durable classic queue of persistent
~200-byte JSON messages with prefetch 100, in its own subprocess, and reports
messages per second. Ratios are against the raw aio-pika callback consumer
measured in the same run. Celery is not installed here and is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFETCH = 100
BODY = json.dumps({"order": 12345, "payload": "x" * 170}).encode()
SCENARIOS = [
    "raw-aio-pika",
    "raw-pika",
    "rabbitbus-noop",
    "rabbitbus-inbox-sqlite",
    "rabbitbus-inbox-postgres",
]


def fill(url: str, queue: str, count: int) -> None:
    """Declare ``queue`` as the worker will (dead-lettering to its DLQ) and fill it."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    arguments = {"x-queue-type": "classic", **dead_lettering(queue)}
    channel.queue_declare(queue, durable=True, arguments=arguments)
    properties = pika.BasicProperties(
        delivery_mode=2, content_type="application/json", message_id=None
    )
    for _ in range(count):
        properties.message_id = uuid.uuid4().hex
        channel.basic_publish("", queue, BODY, properties)
    connection.close()


def dead_lettering(queue: str) -> dict[str, str]:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue}.dlq"}


async def raw_aio_pika(url: str, queue: str, count: int) -> float:
    import aio_pika

    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    target = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "classic", **dead_lettering(queue)}
    )
    done, seen = asyncio.Event(), [0]

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        seen[0] += 1
        if seen[0] == count:
            done.set()

    start = time.perf_counter()
    await target.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - start
    await connection.close()
    return elapsed


def raw_pika(url: str, queue: str, count: int) -> float:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    seen = [0]

    def on_message(ch: object, method: object, properties: object, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]
        seen[0] += 1
        if seen[0] == count:
            channel.stop_consuming()

    start = time.perf_counter()
    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


async def rabbitbus_worker(queue: str, count: int, inbox: bool) -> float:
    from rabbitbus import worker
    from rabbitbus.registry import ConsumerSpec

    done, seen = asyncio.Event(), [0]

    async def noop(message: object) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set()

    def write_one(message: object) -> None:
        from tests.testapp.models import Effect

        Effect.objects.create(consumer="bench", message_id=message.message_id)  # type: ignore[attr-defined]

    handler = write_one if inbox else noop
    spec = ConsumerSpec(
        name=queue,
        handler=handler,
        queue=queue,
        prefetch=PREFETCH,
        concurrency=1 if inbox else PREFETCH,
        queue_type="classic",
        idempotent=inbox,
        is_async=not inbox,
    )
    runtime = worker.consumer_runtime([spec])
    service = runtime.services[0]
    task = asyncio.ensure_future(runtime.run(handle_signals=False))
    start = time.perf_counter()
    while service.stats()["processed"] < count and not task.done():  # type: ignore[attr-defined]
        await asyncio.sleep(0.005)
    if task.done():
        task.result()  # raises what stopped the runtime
    elapsed = time.perf_counter() - start
    runtime.stop()
    await task
    return elapsed


def run_scenario(name: str, url: str, count: int) -> float:
    queue = f"bench.{name}.{uuid.uuid4().hex[:6]}"
    fill(url, queue, count)
    if name == "raw-aio-pika":
        return asyncio.run(raw_aio_pika(url, queue, count))
    if name == "raw-pika":
        return raw_pika(url, queue, count)
    import django

    django.setup()
    from django.core.management import call_command

    if "inbox" in name:
        call_command("migrate", verbosity=0)
    return asyncio.run(rabbitbus_worker(queue, count, inbox="inbox" in name))


def child(name: str, count: int) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{os.environ['RABBITBUS_TEST_VHOST']}"
    print(json.dumps({"seconds": run_scenario(name, url, count)}))


def spawn(name: str, count: int, env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--child", name, "--messages", str(count)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-2000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def database_env(name: str, tmp: Path) -> dict[str, str]:
    if name.endswith("sqlite"):
        return {"BENCH_DATABASE_URL": str(tmp / f"bench-{uuid.uuid4().hex[:6]}.sqlite3")}
    if name.endswith("postgres"):
        db = f"rabbitbus_bench_{uuid.uuid4().hex[:6]}"
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
        return {"BENCH_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}"}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.messages)
    sys.path.insert(0, str(ROOT))
    from tests.broker import add_vhost, delete_vhost

    vhost = f"rabbitbus-bench-{uuid.uuid4().hex[:6]}"
    add_vhost(vhost)
    base = {
        **os.environ,
        "RABBITBUS_TEST_VHOST": vhost,
        "DJANGO_SETTINGS_MODULE": "bench.settings_worker",
        "PYTHONPATH": str(ROOT),
    }
    results: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="rabbitbus-bench-"))
    try:
        for name in SCENARIOS:
            env = {**base, **database_env(name, tmp)}
            results[name] = args.messages / spawn(name, args.messages, env)
    finally:
        delete_vhost(vhost)
    reference = results["raw-aio-pika"]
    print(f"{'scenario':28} {'msg/s':>10} {'vs raw aio-pika':>16}")
    for name, rate in results.items():
        print(f"{name:28} {rate:10.0f} {rate / reference:15.2f}x")


if __name__ == "__main__":
    main()
