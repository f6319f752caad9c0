"""Worker throughput beside raw clients and Celery, measured in one run. Not a test.

    flock /work/.node.lock .venv/bin/python bench/worker.py [--messages 10000]
        [--inbox-messages 2000] [--rounds 3] [--only NAME ...]

Each scenario drains a pre-filled durable classic queue of persistent JSON
messages with prefetch 100, in its own subprocess, and reports messages per
second. Rounds interleave the scenarios (the order reversed every other
round); the table gives medians, and the ratios of rabbitbus's no-op worker to
raw aio-pika (target >= 1.0x) and to a Celery solo worker (target >= 2x), per
round and of the medians. Celery (a dev-only dependency) runs ``celery worker
-P solo`` with late acks and prefetch 100, timed from its first task to its
last. Everything runs in a vhost of its own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# RABBITBUS_BENCH_FAST_PATHS=off: the worker reads its deliveries through aiormq, not the tap.
os.environ["RABBITBUS_TEST_FAST_PATHS"] = os.environ.get("RABBITBUS_BENCH_FAST_PATHS", "on")

from bench.common import broker_version, load_average, median, spread, versions  # noqa: E402
from tests.broker import add_vhost, delete_vhost  # noqa: E402

PREFETCH = 100
BODY = json.dumps({"order": 12345, "payload": "x" * 170}).encode()
SCENARIOS = [
    "raw-aio-pika",
    "raw-pika",
    "rabbitbus-noop",
    "rabbitbus-noop-metrics",
    "rabbitbus-noop-no-otel",
    "celery-solo",
    "rabbitbus-inbox-sqlite",
    "rabbitbus-inbox-postgres",
    "rabbitbus-inline-sqlite",
    "rabbitbus-inline-postgres",
    "rabbitbus-batch-sqlite",
    "rabbitbus-batch-postgres",
    "rabbitbus-many-sqlite",
    "rabbitbus-many-postgres",
    "django-loop-sqlite",
    "django-loop-postgres",
    "inbox-path-sqlite",
    "inbox-path-postgres",
]
#: Minimum ratios of rabbitbus-noop's throughput to another scenario's (issue 3).
TARGETS = {"raw-aio-pika": 1.0, "celery-solo": 2.0}
#: Minimum ratios of the idempotent worker to Django's own loop doing the same database
#: work, no broker (issue 16): the per-message path must cost what Django itself costs.
#: Group commit (``transaction="batch"``) must beat the per-message loop (issue 16 asks
#: >= 10x the per-message inbox of 2026-12-03, 373 msg/s on PostgreSQL).
INBOX_TARGETS = {
    # The worker's own per-message database path without a broker (inbox-path-*): what is
    # left of the gap once the broker's part is taken out.
    ("path", "sqlite"): 0.8,
    ("path", "postgres"): 0.8,
    ("inbox", "sqlite"): 0.8,
    ("inbox", "postgres"): 0.8,
    # The same handler with inline=True: no thread hop, one thread for I/O and handler.
    ("inline", "sqlite"): 0.8,
    ("inline", "postgres"): 0.8,
    ("batch", "sqlite"): 1.0,
    ("batch", "postgres"): 1.0,
    # Group commit with a handler that takes the batch's messages at once (``many=True``)
    # and writes their rows in one INSERT: issue 16's 3,700 msg/s is about 2.4x Django's loop.
    ("many", "sqlite"): 1.0,
    ("many", "postgres"): 2.4,
}
#: Issue 16's group commit target on PostgreSQL, in msg/s: 10x the per-message inbox of
#: 2026-12-03 (373 msg/s).
GROUP_COMMIT_TARGET = 3700
#: Observability's cost (issue 19), least ratio to the baseline: noop has opentelemetry-api
#: and no provider (hooks return at once), no-otel skips the hooks as if it were not installed.
OVERHEADS = {("noop-metrics", "noop"): 0.90, ("noop", "noop-no-otel"): 0.98}


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


class Clock:
    """Times ``count`` messages from the first one handled to the last, as for Celery.

    Connecting and declaring are left out for every contender alike; the
    result is scaled by ``count / (count - 1)`` to stand for ``count`` messages.
    """

    def __init__(self, count: int) -> None:
        self.count, self.seen, self.first, self.last = count, 0, 0.0, 0.0
        self.done = threading.Event()

    def tick(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first = time.perf_counter()
        if self.seen == self.count:
            self.last = time.perf_counter()
            self.done.set()

    async def wait(self) -> float:
        while not self.done.is_set():
            await asyncio.sleep(0.005)
        return self.seconds()

    def seconds(self) -> float:
        return (self.last - self.first) * self.count / (self.count - 1)


async def raw_aio_pika(url: str, queue: str, count: int) -> float:
    import aio_pika

    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    target = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "classic", **dead_lettering(queue)}
    )
    clock = Clock(count)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        clock.tick()

    await target.consume(on_message)
    seconds = await clock.wait()
    await connection.close()
    return seconds


def raw_pika(url: str, queue: str, count: int) -> float:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    clock = Clock(count)

    def on_message(ch: object, method: object, properties: object, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]
        clock.tick()
        if clock.done.is_set():
            channel.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    connection.close()
    return clock.seconds()


async def rabbitbus_worker(
    queue: str, count: int, inbox: bool, batch: str = "", inline: bool = False
) -> float:
    """``batch``: "" (a transaction per message), "batch" (group commit) or "many" (group
    commit, the handler taking the batch's messages at once); ``inline``: the handler in the
    event loop's thread (``@consumer(inline=True)``)."""
    from rabbitbus.consuming import worker
    from rabbitbus.consuming.registry import ConsumerSpec

    clock = Clock(count)

    async def noop(message: object) -> None:
        clock.tick()

    def write_one(message: object) -> None:
        from tests.testapp.models import Effect

        Effect.objects.create(consumer="bench", message_id=message.message_id)  # type: ignore[attr-defined]
        clock.tick()  # concurrency 1: one thread

    def write_many(messages: list) -> None:
        from tests.testapp.models import Effect

        Effect.objects.bulk_create(
            Effect(consumer="bench", message_id=message.message_id) for message in messages
        )
        for _ in messages:
            clock.tick()

    spec = ConsumerSpec(
        name=queue,
        handler=(write_many if batch == "many" else write_one) if inbox else noop,
        queue=queue,
        prefetch=PREFETCH,
        concurrency=1 if inbox else PREFETCH,
        queue_type="classic",
        idempotent=inbox,
        is_async=not inbox,
        transaction="batch" if batch else "message",
        many=batch == "many",
        inline=inline,
    )
    runtime = worker.consumer_runtime([spec])
    task = asyncio.ensure_future(runtime.run(handle_signals=False))
    done = asyncio.ensure_future(clock.wait())
    await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what stopped the runtime
    runtime.stop()
    await task
    return await done


def celery_solo(queue: str, count: int) -> float:
    """Seconds from Celery's first no-op task to its last, on a solo worker."""
    marks = Path(tempfile.mkdtemp(prefix="rabbitbus-bench-celery-"))
    os.environ.update(
        BENCH_CELERY_QUEUE=queue, BENCH_CELERY_COUNT=str(count), BENCH_CELERY_DIR=str(marks)
    )
    from bench.celery_worker_app import app, noop  # dev-only dependency

    with app.producer_or_acquire() as producer:
        for n in range(count):
            noop.apply_async((n,), producer=producer)
    command = ["-m", "celery", "-A", "bench.celery_worker_app", "worker", "-P", "solo"]
    options = ["-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(
        [sys.executable, *command, *options], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while not (marks / "last").exists():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker stopped before its last task")
            time.sleep(0.01)
    finally:
        worker.terminate()
        worker.wait(30)
    first, last = (float((marks / mark).read_text()) for mark in ("first", "last"))
    return (last - first) * count / (count - 1)  # the first task's own time, as the others


def django_loop(count: int) -> float:
    """The same database work as the idempotent handler, in a plain Django loop without a
    broker: per message, Django's connection hygiene, one transaction, the inbox row
    (``INSERT ... ON CONFLICT DO NOTHING``) and the handler's one row."""
    from django.db import close_old_connections, connection, transaction
    from django.utils import timezone

    from rabbitbus.models import ProcessedMessage
    from tests.testapp.models import Effect

    table = connection.ops.quote_name(ProcessedMessage._meta.db_table)
    sql = (
        f"INSERT INTO {table} (consumer, message_id, processed_at) VALUES (%s, %s, %s) "  # noqa: S608 - a quoted table name; values are parameters
        "ON CONFLICT DO NOTHING"
    )
    ids = [uuid.uuid4().hex for _ in range(count)]
    clock = Clock(count)
    for message_id in ids:
        close_old_connections()
        with transaction.atomic():
            with connection.cursor() as cursor:
                now = connection.ops.adapt_datetimefield_value(timezone.now())
                cursor.execute(sql, ["bench", message_id, now])
            Effect.objects.create(consumer="bench", message_id=message_id)
        clock.tick()
    return clock.seconds()


def inbox_path(count: int) -> float:
    """The idempotent handler's database work as the worker does it, without a broker:
    each message decoded, then :func:`rabbitbus.consuming.dispatch.run_handler` through the
    worker's thread (one hop, the inbox row and the handler's row in one transaction)."""
    from rabbitbus.consuming import dispatch
    from rabbitbus.consuming.registry import ConsumerSpec
    from rabbitbus.messages import Delivery
    from rabbitbus.runtime.threads import Threads
    from tests.testapp.models import Effect

    clock = Clock(count)

    def write_one(message: object) -> None:
        Effect.objects.create(consumer="bench", message_id=message.message_id)  # type: ignore[attr-defined]
        clock.tick()

    spec = ConsumerSpec(
        name="bench", handler=write_one, queue="bench", prefetch=PREFETCH, concurrency=1,
        queue_type="classic", idempotent=True, is_async=False,
    )  # fmt: skip

    async def run() -> float:
        threads = Threads(1, "bench")
        for _ in range(count):
            delivery = Delivery(
                body=BODY, headers={}, exchange="", routing_key="bench",
                message_id=uuid.uuid4().hex, content_type="application/json",
            )  # fmt: skip
            await dispatch.run_handler(spec, dispatch.receive(spec, delivery), threads)
        threads.shutdown()
        return await clock.wait()

    return asyncio.run(run())


def run_scenario(name: str, url: str, count: int) -> float:
    queue = f"bench.{name}.{uuid.uuid4().hex[:6]}"
    if name == "celery-solo":
        return celery_solo(queue, count)
    if name.startswith(("django-loop", "inbox-path")):
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        return django_loop(count) if name.startswith("django-loop") else inbox_path(count)
    fill(url, queue, count)
    if name == "raw-aio-pika":
        return asyncio.run(raw_aio_pika(url, queue, count))
    if name == "raw-pika":
        return raw_pika(url, queue, count)
    import django

    django.setup()
    from django.core.management import call_command

    inbox = name.endswith(("sqlite", "postgres"))
    if inbox:
        call_command("migrate", verbosity=0)
    observability(name)
    batch = next((kind for kind in ("batch", "many") if f"-{kind}-" in name), "")
    inline = "-inline-" in name
    return asyncio.run(rabbitbus_worker(queue, count, inbox=inbox, batch=batch, inline=inline))


def observability(name: str) -> None:
    """Metrics on (no port served: counting is the cost) or tracing hooks off, as named."""
    from rabbitbus.observability import metrics, traces

    if name.endswith("-metrics"):
        metrics.enable()
    if name.endswith("-no-otel"):
        traces.on = False


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


def drop_database(env: dict[str, str]) -> None:
    url = env.get("BENCH_DATABASE_URL", "")
    if url.startswith("postgres"):
        db = url.rsplit("/", 1)[1]
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", db], check=False)


def measure(names: list[str], args: argparse.Namespace, base: dict[str, str]) -> dict:
    """msg/s of each scenario in each round, the order reversed every other round."""
    rates: dict[str, list[float]] = {name: [] for name in names}
    tmp = Path(tempfile.mkdtemp(prefix="rabbitbus-bench-"))
    for number in range(args.rounds):
        for name in names if number % 2 == 0 else reversed(names):
            count = args.inbox_messages if name.endswith(("sqlite", "postgres")) else args.messages
            env = {**base, **database_env(name, tmp)}
            try:
                rates[name].append(count / spawn(name, count, env))
            finally:
                drop_database(env)
        print(f"round {number + 1}/{args.rounds} done (load {load_average()})", flush=True)
    return rates


def report(rates: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"{args.messages} msgs ({args.inbox_messages} for the inbox), {args.rounds} rounds")
    print(f"{'scenario':26} {'median msg/s':>13} {'min-max':>16}  rounds")
    for name, values in rates.items():
        each = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:26} {median(values):13,.0f} {spread(values):>16}  {each}")
    ours = rates.get("rabbitbus-noop")
    for other, target in TARGETS.items():
        if ours and rates.get(other):
            per_round = [a / b for a, b in zip(ours, rates[other], strict=True)]
            ratio = median(ours) / median(rates[other])
            print(
                f"rabbitbus-noop / {other}: {ratio:.2f}x of medians, per round "
                f"{', '.join(f'{r:.2f}' for r in per_round)} (target >= {target:.1f}x)"
            )
    for (name, baseline), least in OVERHEADS.items():
        ours, base = rates.get(f"rabbitbus-{name}"), rates.get(f"rabbitbus-{baseline}")
        if ours and base:
            each = ", ".join(f"{a / b:.3f}" for a, b in zip(ours, base, strict=True))
            ratio = median(ours) / median(base)
            print(f"{name} / {baseline}: {ratio:.3f}x, per round {each} (target >= {least}x)")
    for (kind, database), target in INBOX_TARGETS.items():
        label = f"inbox-path-{database}" if kind == "path" else f"rabbitbus-{kind}-{database}"
        ours, loop = rates.get(label), rates.get(f"django-loop-{database}")
        if ours and loop:
            per_round = [a / b for a, b in zip(ours, loop, strict=True)]
            print(
                f"{label} / django-loop-{database}: "
                f"{median(ours) / median(loop):.2f}x of medians, per round "
                f"{', '.join(f'{r:.2f}' for r in per_round)} (target >= {target:.1f}x)"
            )

    for label in ("rabbitbus-batch-postgres", "rabbitbus-many-postgres"):
        if rates.get(label):
            rate = median(rates[label])
            print(f"{label}: {rate:,.0f} msg/s (issue 16's target >= {GROUP_COMMIT_TARGET:,})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--inbox-messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.messages)
    vhost = f"rabbitbus-bench-{uuid.uuid4().hex[:6]}"
    add_vhost(vhost)
    base = {
        **os.environ,
        "RABBITBUS_TEST_VHOST": vhost,
        "DJANGO_SETTINGS_MODULE": "bench.settings_worker",
        "PYTHONPATH": str(ROOT),
    }
    print(versions("Django", "pika", "aio-pika", "aiormq", "celery"), broker_version())
    try:
        rates = measure([name for name in SCENARIOS if name in args.only], args, base)
    finally:
        delete_vhost(vhost)
    report(rates, args)


if __name__ == "__main__":
    main()
