"""RPC benchmark (not a test): rabbitbus beside the raw clients, as ratios from one run.

    .venv/bin/python bench/rpc.py [--calls 2000] [--async-calls 5000] [--celery] [--loop L]

* sync ``rpc.call`` vs the RabbitMQ tutorial's pika client (exclusive callback
  queue), both against the same ``rabbit_rpc`` server process, so only the
  client differs. Target: p50 <= 1.15x raw.
* async ``rpc.acall`` with 50 in flight vs ``aio_pika.patterns.RPC`` (its pickle
  default left alone: it is only the baseline). Each side has its own server
  process with the same prefetch (100) and every prefetched request running at
  once (aio-pika runs each delivery as a task; ``rabbit_rpc --concurrency 100``);
  both echo procedures are ``async def`` yielding once, and both servers run on
  the same event loop (``--loop``, default ``auto``: uvloop when installed).
  Target: >= 1.5x its calls per second.
* optionally (``--metrics``) the cost of Prometheus metrics (issue 19): ``rpc.call`` to
  a ``def`` echo on a server without metrics, beside ``rpc.call`` with metrics on in the
  caller to a ``def`` echo on a second ``rabbit_rpc`` serving ``--metrics-port`` (its
  echo returns ``{"args": [n], "kwargs": {}}``, not ``n``). Target: p50 <= 1.10x.
* optionally Celery's ``rpc://`` result backend (dev-only dependency), with a
  solo and a default prefork worker side by side (``celery worker -P
  solo|prefork``, default options, a queue each), ``apply_async(...).get()``
  from the caller, beside ``rpc.call`` to a ``def`` echo (what a Celery task
  is) and to the ``async def`` one. Target: rabbitbus ``call`` p50 at least 3x
  faster.

The contenders of each comparison take turns over four rounds (A B, B A, ...);
latencies are pooled, rates are the rounds' median. Runs in its own vhost,
deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RABBITBUS_TEST_VHOST", f"rabbitbus-bench-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# RABBITBUS_BENCH_FAST_PATHS=off: the callers and the servers on the drivers' public API.
os.environ["RABBITBUS_TEST_FAST_PATHS"] = os.environ.get("RABBITBUS_BENCH_FAST_PATHS", "on")

import django  # noqa: E402

django.setup()

import aio_pika  # noqa: E402
import pika  # noqa: E402
from aio_pika.patterns import RPC  # noqa: E402

from rabbitbus import rpc  # noqa: E402
from rabbitbus.runtime import event_loop  # noqa: E402
from rabbitbus.transport import connections  # noqa: E402
from tests import broker as broker_module  # noqa: E402
from tests.broker import Broker  # noqa: E402

VHOST = os.environ["RABBITBUS_TEST_VHOST"]
URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
IN_FLIGHT = 50
#: Both servers: at most this many unacked requests, all of them running at once
#: (aio-pika's RPC server runs every delivery as a task, so its concurrency is its prefetch).
PREFETCH = 100


#: Served by ``manage.py rabbit_rpc`` in its own process (tests/testapp/rabbit.py):
#: an ``async def`` echo yielding once, and a ``def`` echo (what a Celery task is).
PROCEDURE = "test.aecho"
SYNC_PROCEDURE = "test.echo_value"
#: A ``def`` echo served, with ``--metrics``, by a second server with metrics on.
METRICS_PROCEDURE = "test.echo"
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
    # Asking for a queue the server has not declared yet is expected here, not a warning.
    logging.getLogger("pika.channel").setLevel(logging.ERROR)
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


ROUNDS = 4


def timed(fn: Callable[[int], Any], calls: int) -> tuple[list[float], float]:
    """Latencies of ``calls`` sequential calls, and calls per second."""
    latencies = []
    started = time.perf_counter()
    for n in range(calls):
        t0 = time.perf_counter()
        fn(n)
        latencies.append(time.perf_counter() - t0)
    return latencies, calls / (time.perf_counter() - started)


async def atimed(fn: Callable[[int], Awaitable[Any]], calls: int) -> tuple[list[float], float]:
    """Latencies of ``calls`` calls kept ``IN_FLIGHT`` at a time, and calls per second."""
    window = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with window:
            t0 = time.perf_counter()
            await fn(n)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    return latencies, calls / (time.perf_counter() - started)


def turns(names: list[str]) -> Iterator[str]:
    """The contenders' names over ``ROUNDS`` rounds, taking turns (A B, B A, ...) so
    that neither always runs on a warmer or quieter machine."""
    for number in range(ROUNDS):
        yield from names if number % 2 == 0 else reversed(names)


class Tally:
    """Latencies pooled over the rounds, and the median of the rounds' rates."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.rates: dict[str, list[float]] = {}

    def add(self, name: str, latencies: list[float], rate: float) -> None:
        self.latencies.setdefault(name, []).extend(latencies)
        self.rates.setdefault(name, []).append(rate)

    def rows(self) -> list[dict[str, float]]:
        return [
            report(name, self.latencies[name], statistics.median(self.rates[name]))
            for name in self.latencies
        ]


def p(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100)[q - 1] * 1000


def report(label: str, latencies: list[float], rate: float) -> dict[str, float]:
    row = {"p50": p(latencies, 50), "p99": p(latencies, 99), "rate": rate}
    print(f"{label:<40} p50 {row['p50']:7.3f} ms  p99 {row['p99']:7.3f} ms  {rate:7.0f} calls/s")
    return row


def bench_sync(calls: int) -> None:
    tutorial = TutorialClient()
    contenders = {
        "raw pika tutorial client": tutorial.call,
        "rabbitbus rpc.call": lambda n: rpc.call(PROCEDURE, n),
    }
    tally = Tally()
    for fn in contenders.values():
        timed(fn, 100)  # warm up
    for name in turns(list(contenders)):
        tally.add(name, *timed(contenders[name], calls // ROUNDS))
    raw, ours = tally.rows()
    tutorial.connection.close()
    print(f"  -> p50 ratio rabbitbus/raw = {ours['p50'] / raw['p50']:.2f}x (target <= 1.15x)")


def bench_metrics(calls: int, loop: str) -> None:
    """p50 of ``rpc.call`` with metrics on in the caller and the server, against off."""
    from rabbitbus.observability import metrics

    metrics_server = start(
        "manage.py", "rabbit_rpc", METRICS_PROCEDURE, "--loop", loop, "--metrics-port", "0"
    )  # fmt: skip
    try:
        wait_consumed(rpc.queue_name(METRICS_PROCEDURE))
        contenders = {
            "rpc.call, metrics off": lambda n: rpc.call(SYNC_PROCEDURE, n),
            "rpc.call, metrics on (caller and server)": lambda n: rpc.call(METRICS_PROCEDURE, n),
        }
        tally = Tally()
        for name, fn in contenders.items():
            metrics.enable() if "metrics on" in name else metrics.disable()
            timed(fn, 100)  # warm up
        for name in turns(list(contenders)):
            metrics.enable() if "metrics on" in name else metrics.disable()
            tally.add(name, *timed(contenders[name], calls // ROUNDS))
        metrics.disable()
        off, on = tally.rows()
        print(f"  -> p50 ratio metrics on/off = {on['p50'] / off['p50']:.2f}x (target <= 1.10x)")
    finally:
        metrics_server.terminate()
        metrics_server.wait(30)


async def bench_async(calls: int, loop: str) -> None:
    server = start(__file__, "--pattern-server", "--loop", loop)
    connection = await aio_pika.connect_robust(URL)
    patterns_rpc = await RPC.create(await connection.channel())
    await asyncio.to_thread(wait_consumed, "bench_echo")
    contenders = {
        f"rabbitbus rpc.acall ({IN_FLIGHT} in flight)": lambda n: rpc.acall(PROCEDURE, n),
        f"aio_pika.patterns.RPC ({IN_FLIGHT} in flight)": lambda n: patterns_rpc.call(
            "bench_echo", kwargs={"value": n}
        ),
    }
    tally = Tally()
    for fn in contenders.values():
        await atimed(fn, 300)  # warm up
    for name in turns(list(contenders)):
        tally.add(name, *await atimed(contenders[name], calls // ROUNDS))
    ours, theirs = tally.rows()
    await connection.close()
    await connections.aclose_all()
    server.terminate()
    print(
        f"  -> calls/s ratio rabbitbus/aio-pika = {ours['rate'] / theirs['rate']:.2f}x",
        "(target >= 1.5x)",
    )


async def _pattern_echo(*, value: Any) -> Any:
    await asyncio.sleep(0)  # as test.aecho does
    return value


async def pattern_server() -> None:
    """aio-pika's own RPC server for the baseline, in its own process like ours."""
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    patterns_rpc = await RPC.create(channel)
    await patterns_rpc.register("bench_echo", _pattern_echo, auto_delete=True)
    await asyncio.Future()


CELERY_POOLS = ("solo", "prefork")


def celery_worker(pool: str) -> subprocess.Popen[bytes]:
    """A Celery worker as its docs run one (default options), with a queue and a name
    of its own."""
    return start(
        "-m", "celery", "-A", "bench.celery_app", "worker",
        "-P", pool, "-Q", f"bench.{pool}", "-n", f"{pool}@%h",
    )  # fmt: skip


def bench_celery(calls: int) -> None:
    """``rpc.call`` (a ``def`` and an ``async def`` echo) and Celery's ``rpc://`` backend
    (``echo.apply_async(...).get()``, solo and prefork workers), taking turns."""
    from bench.celery_app import echo  # dev-only dependency

    workers = [celery_worker(pool) for pool in CELERY_POOLS]
    try:
        for pool in CELERY_POOLS:
            wait_consumed(f"bench.{pool}")
        contenders: dict[str, Callable[[int], Any]] = {
            "rabbitbus rpc.call, def procedure": lambda n: rpc.call(SYNC_PROCEDURE, n),
            "rabbitbus rpc.call, async def procedure": lambda n: rpc.call(PROCEDURE, n),
            **{
                f"celery rpc:// backend, {pool} worker": partial(_celery_call, echo, pool)
                for pool in CELERY_POOLS
            },
        }
        tally = Tally()
        for fn in contenders.values():
            timed(fn, 50)  # warm up
        for name in turns(list(contenders)):
            tally.add(name, *timed(contenders[name], calls // ROUNDS))
        ours_def, ours_async, *celery = tally.rows()
        for pool, theirs in zip(CELERY_POOLS, celery, strict=True):
            print(
                f"  -> p50 speed-up vs celery {pool}: def {theirs['p50'] / ours_def['p50']:.2f}x,",
                f"async def {theirs['p50'] / ours_async['p50']:.2f}x (target >= 3x)",
            )
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)


def _celery_call(task: Any, pool: str, n: int) -> Any:
    return task.apply_async((n,), queue=f"bench.{pool}").get(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--async-calls", type=int, default=5000)
    parser.add_argument("--celery", action="store_true", help="Also Celery's rpc:// backend.")
    parser.add_argument("--metrics", action="store_true", help="Also the cost of metrics.")
    parser.add_argument("--celery-calls", type=int, default=1000)
    parser.add_argument(
        "--loop", choices=event_loop.CHOICES, default="auto", help="The servers' event loop."
    )
    parser.add_argument("--pattern-server", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.pattern_server:
        event_loop.run(pattern_server(), options.loop)
        return
    broker_module.add_vhost(VHOST)
    print(f"rabbitbus servers on the {event_loop.resolve(options.loop)} event loop")
    server = start(
        "manage.py", "rabbit_rpc", PROCEDURE, SYNC_PROCEDURE, "--loop", options.loop,
        "--prefetch", str(PREFETCH), "--concurrency", str(PREFETCH),
    )  # fmt: skip
    try:
        for name in (PROCEDURE, SYNC_PROCEDURE):
            wait_consumed(rpc.queue_name(name))
        bench_sync(options.calls)
        asyncio.run(bench_async(options.async_calls, options.loop))
        if options.metrics:
            bench_metrics(options.calls, options.loop)
        if options.celery:
            bench_celery(options.celery_calls)
        connections.close_all()
    finally:
        server.terminate()
        server.wait(30)
        broker_module.delete_vhost(VHOST)


if __name__ == "__main__":
    main()
