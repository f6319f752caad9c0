"""RPC benchmark (not a test): rabbitbus beside the raw clients, as ratios from one run.

    .venv/bin/python bench/rpc.py [--calls 2000] [--async-calls 5000] [--celery]

* sync ``rpc.call`` vs the RabbitMQ tutorial's pika client (both against the
  same rabbitbus server, so only the client differs). Target: p50 <= 1.15x raw.
* async ``rpc.acall`` with 50 in flight vs ``aio_pika.patterns.RPC`` (its own
  server, JSON-free pickle default left alone: it is only the baseline).
  Target: >= 1.5x its calls per second.
* optionally Celery's ``rpc://`` result backend (dev-only dependency). Target:
  rabbitbus p50 at least 3x faster.

Runs in its own vhost, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RABBITBUS_TEST_VHOST", f"rabbitbus-bench-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

import aio_pika  # noqa: E402
import pika  # noqa: E402
from aio_pika.patterns import RPC  # noqa: E402

from rabbitbus import connections, rpc  # noqa: E402
from tests import broker as broker_module  # noqa: E402
from tests.broker import Broker  # noqa: E402

VHOST = os.environ["RABBITBUS_TEST_VHOST"]
URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
IN_FLIGHT = 50
#: Both servers: at most this many unacked requests, all of them running at once
#: (aio-pika's RPC server runs every delivery as a task, so its concurrency is its prefetch).
PREFETCH = 100


#: Served by ``manage.py rabbit_rpc`` in its own process (tests/testapp/rabbit.py).
PROCEDURE = "test.aecho"
ROOT = Path(__file__).resolve().parent.parent


def start(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_consumed(queue: str) -> None:
    broker = Broker(VHOST)
    for _ in range(1200):
        try:
            if broker.consumers(queue):
                return
        except pika.exceptions.ChannelClosedByBroker:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nobody consumes {queue}")


class TutorialClient:
    """The RabbitMQ tutorial's RPC client (exclusive callback queue), speaking JSON."""

    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(URL))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(self.callback_queue, self.on_response, auto_ack=True)
        self.response: bytes | None = None
        self.corr_id = ""

    def on_response(self, _ch: Any, _method: Any, props: Any, body: bytes) -> None:
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n: int) -> bytes:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            "",
            rpc.queue_name(PROCEDURE),
            b'{"args":[%d]}' % n,
            pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
                content_type="application/json",
            ),
        )
        while self.response is None:
            self.connection.process_data_events(time_limit=None)
        return self.response


def timed(fn: Callable[[int], Any], calls: int) -> tuple[list[float], float]:
    for n in range(50):
        fn(n)  # warm up
    latencies = []
    started = time.perf_counter()
    for n in range(calls):
        t0 = time.perf_counter()
        fn(n)
        latencies.append(time.perf_counter() - t0)
    return latencies, calls / (time.perf_counter() - started)


async def atimed(fn: Callable[[int], Awaitable[Any]], calls: int) -> tuple[list[float], float]:
    window = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with window:
            t0 = time.perf_counter()
            await fn(n)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(n) for n in range(200)))  # warm up
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    return latencies, calls / (time.perf_counter() - started)


def p(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100)[q - 1] * 1000


def report(label: str, latencies: list[float], rate: float) -> dict[str, float]:
    row = {"p50": p(latencies, 50), "p99": p(latencies, 99), "rate": rate}
    print(f"{label:<34} p50 {row['p50']:7.3f} ms  p99 {row['p99']:7.3f} ms  {rate:9.0f} calls/s")
    return row


def bench_sync(calls: int) -> float:
    tutorial = TutorialClient()
    raw = report("raw pika tutorial client", *timed(tutorial.call, calls))
    ours = report("rabbitbus rpc.call", *timed(lambda n: rpc.call(PROCEDURE, n), calls))
    tutorial.connection.close()
    print(f"  -> p50 ratio rabbitbus/raw = {ours['p50'] / raw['p50']:.2f}x (target <= 1.15x)")
    return ours["p50"]


async def bench_async(calls: int) -> None:
    ours = report(
        f"rabbitbus rpc.acall ({IN_FLIGHT} in flight)",
        *await atimed(lambda n: rpc.acall(PROCEDURE, n), calls),
    )
    await connections.aclose_all()
    server = start(__file__, "--pattern-server")
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    patterns_rpc = await RPC.create(channel)
    await asyncio.to_thread(wait_consumed, "bench_echo")
    theirs = report(
        f"aio_pika.patterns.RPC ({IN_FLIGHT} in flight)",
        *await atimed(lambda n: patterns_rpc.call("bench_echo", kwargs={"value": n}), calls),
    )
    await connection.close()
    server.terminate()
    print(
        f"  -> calls/s ratio rabbitbus/aio-pika = {ours['rate'] / theirs['rate']:.2f}x",
        "(target >= 1.5x)",
    )


async def _pattern_echo(*, value: Any) -> Any:
    return value


async def pattern_server() -> None:
    """aio-pika's own RPC server for the baseline, in its own process like ours."""
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    patterns_rpc = await RPC.create(channel)
    await patterns_rpc.register("bench_echo", _pattern_echo, auto_delete=True)
    await asyncio.Future()


def bench_celery(calls: int, ours_p50: float) -> None:
    from bench.celery_app import echo  # dev-only dependency

    worker = start("-m", "celery", "-A", "bench.celery_app", "worker", "-P", "solo")
    try:
        wait_consumed("celery")
        theirs = report(
            "celery rpc:// backend", *timed(lambda n: echo.delay(n).get(timeout=10), calls)
        )
        print(
            f"  -> p50 speed-up rabbitbus/celery = {theirs['p50'] / ours_p50:.2f}x (target >= 3x)"
        )
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--async-calls", type=int, default=5000)
    parser.add_argument("--celery", action="store_true", help="Also Celery's rpc:// backend.")
    parser.add_argument("--celery-calls", type=int, default=500)
    parser.add_argument("--pattern-server", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.pattern_server:
        asyncio.run(pattern_server())
        return
    broker_module.add_vhost(VHOST)
    server = start(
        "manage.py", "rabbit_rpc", PROCEDURE,
        "--prefetch", str(PREFETCH), "--concurrency", str(PREFETCH),
    )  # fmt: skip
    try:
        wait_consumed(rpc.queue_name(PROCEDURE))
        ours_p50 = bench_sync(options.calls)
        asyncio.run(bench_async(options.async_calls))
        if options.celery:
            bench_celery(options.celery_calls, ours_p50)
        connections.close_all()
    finally:
        server.terminate()
        server.wait(30)
        broker_module.delete_vhost(VHOST)


if __name__ == "__main__":
    main()
