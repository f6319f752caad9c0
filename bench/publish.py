"""Publish throughput: rabbitbus against raw pika, aiormq and aio-pika, side by side.

Run from the repository root::

    .venv/bin/python -m bench.publish [--messages N] [--batch-messages M] [--rounds R]

Every contender publishes persistent ~200-byte JSON messages, ``mandatory``,
to a fresh topic exchange bound to a fresh durable queue, and waits for
publisher confirms (except the connection-per-message anti-pattern, which is
shown for context). Rounds interleave the contenders, the queue is purged
before each timed run, and medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import pika
import pika.exceptions
from aiormq import spec

import rabbitbus
import rabbitbus.transport.connections
from bench.common import (
    BROKER_URL,
    CONTENT_TYPE,
    PERSISTENT,
    Contender,
    Row,
    Topology,
    broker_version,
    encode,
    format_table,
    fresh_topology,
    interleave,
    load_average,
    median,
    sample_payload,
    setup_django,
    spread,
    versions,
)

WINDOW = 500
CHUNK = 500
WARMUP = 100


@dataclass
class Comparison:
    """A table row in the making: raw and rabbitbus contenders and a target ratio."""

    scenario: str
    raw: Contender
    ours: Contender
    target: float | None = None

    def row(self) -> Row:
        return Row(self.scenario, median(self.raw.rates), median(self.ours.rates), self.target)


class RawPika:
    """A kept pika ``BlockingConnection`` with a confirm-mode channel."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish_each(self, count: int) -> None:
        """``basic_publish`` one message at a time; pika waits for each confirm."""
        exchange, key = self.topology.exchange, self.topology.routing_key
        for index in range(count):
            properties = pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=PERSISTENT)
            self.channel.basic_publish(
                exchange, key, encode(sample_payload(index)), properties, mandatory=True
            )

    def close(self) -> None:
        with suppress(pika.exceptions.AMQPError):
            self.connection.close()


def pika_connection_per_message(topology: Topology, count: int) -> None:
    """The anti-pattern: connect, open a channel, publish, close, for every message."""
    parameters = pika.URLParameters(BROKER_URL)
    properties = pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=PERSISTENT)
    for index in range(count):
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        channel.basic_publish(
            topology.exchange, topology.routing_key, encode(sample_payload(index)), properties
        )
        connection.close()


class RawAsync:
    """A raw aiormq confirm channel and a raw aio-pika confirm channel, on one loop."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.aiormq: aiormq.abc.AbstractConnection | None = None
        self.aiormq_channel: aiormq.abc.AbstractChannel | None = None
        self.aio_pika: aio_pika.abc.AbstractConnection | None = None
        self.exchange: aio_pika.abc.AbstractExchange | None = None

    async def open(self) -> None:
        self.aiormq = await aiormq.connect(BROKER_URL)
        self.aiormq_channel = await self.aiormq.channel(publisher_confirms=True)
        self.aio_pika = await aio_pika.connect(BROKER_URL)
        channel = await self.aio_pika.channel(publisher_confirms=True)
        self.exchange = await channel.get_exchange(self.topology.exchange)

    async def aiormq_window(self, count: int) -> None:
        """``count`` publishes with at most ``WINDOW`` confirms outstanding."""
        channel = self.aiormq_channel
        assert channel is not None
        exchange, key = self.topology.exchange, self.topology.routing_key
        window = asyncio.Semaphore(WINDOW)

        async def one(index: int) -> None:
            async with window:
                properties = spec.Basic.Properties(
                    content_type=CONTENT_TYPE, delivery_mode=PERSISTENT
                )
                confirmation = await channel.basic_publish(
                    encode(sample_payload(index)),
                    exchange=exchange,
                    routing_key=key,
                    properties=properties,
                    mandatory=True,
                )
                if not isinstance(confirmation, spec.Basic.Ack):
                    raise RuntimeError(f"aiormq publish not acked: {confirmation!r}")

        await asyncio.gather(*(one(index) for index in range(count)))

    async def aio_pika_each(self, count: int) -> None:
        """``await exchange.publish`` one message at a time."""
        exchange = self.exchange
        assert exchange is not None
        for index in range(count):
            message = aio_pika.Message(
                encode(sample_payload(index)),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=self.topology.routing_key, mandatory=True)

    async def close(self) -> None:
        for connection in (self.aio_pika, self.aiormq):
            if connection is not None:
                with suppress(Exception):
                    await connection.close()


def rabbitbus_each(topology: Topology, count: int) -> None:
    """``rabbitbus.publish`` one message at a time (each waits for its confirm)."""
    for index in range(count):
        rabbitbus.publish(topology.exchange, topology.routing_key, sample_payload(index))


def rabbitbus_batch(topology: Topology, count: int, chunk: int | None = None) -> None:
    """``publish_many`` over the whole batch, or over successive chunks of ``chunk``."""
    batch = messages(topology, count)
    step = chunk or count
    for start in range(0, count, step):
        result = rabbitbus.publish_many(batch[start : start + step])
        result.raise_first()


async def rabbitbus_abatch(topology: Topology, count: int) -> None:
    """``apublish_many`` over the whole batch (rabbitbus bounds the confirms in flight)."""
    result = await rabbitbus.apublish_many(messages(topology, count))
    result.raise_first()


async def rabbitbus_aeach(topology: Topology, count: int) -> None:
    """``await rabbitbus.apublish`` one message at a time."""
    for index in range(count):
        await rabbitbus.apublish(topology.exchange, topology.routing_key, sample_payload(index))


def messages(topology: Topology, count: int) -> list[rabbitbus.Message]:
    """``count`` messages for ``publish_many`` / ``apublish_many``."""
    return [
        rabbitbus.Message(topology.exchange, topology.routing_key, sample_payload(index))
        for index in range(count)
    ]


def on_loop(
    loop: asyncio.AbstractEventLoop, job: Callable[[int], Coroutine[Any, Any, None]]
) -> Callable[[int], None]:
    """Turn a coroutine function of ``count`` into a blocking call on ``loop``."""
    return lambda count: loop.run_until_complete(job(count))


def comparisons(
    args: argparse.Namespace,
    topology: Topology,
    raw_pika: RawPika,
    raw_async: RawAsync,
    loop: asyncio.AbstractEventLoop,
) -> list[Comparison]:
    """The scenarios of the table, in order."""
    each, batch, per_connection = args.messages, args.batch_messages, args.per_connection
    aiormq_window = Contender(
        f"aiormq {WINDOW} in flight", batch, on_loop(loop, raw_async.aiormq_window)
    )
    return [
        Comparison(
            "sync, confirm each: pika vs publish()",
            Contender("pika confirm each", each, raw_pika.publish_each),
            Contender("rabbitbus.publish", each, lambda n: rabbitbus_each(topology, n)),
            0.9,
        ),
        Comparison(
            f"async, {WINDOW} in flight: aiormq vs apublish_many()",
            aiormq_window,
            Contender(
                "rabbitbus.apublish_many",
                batch,
                on_loop(loop, lambda n: rabbitbus_abatch(topology, n)),
            ),
            0.85,
        ),
        Comparison(
            "batch: aiormq vs publish_many(whole batch)",
            aiormq_window,
            Contender("rabbitbus.publish_many", batch, lambda n: rabbitbus_batch(topology, n)),
            0.85,
        ),
        Comparison(
            f"batch: aiormq vs publish_many(chunks of {CHUNK})",
            aiormq_window,
            Contender(
                f"rabbitbus.publish_many/{CHUNK}",
                batch,
                lambda n: rabbitbus_batch(topology, n, CHUNK),
            ),
            0.85,
        ),
        Comparison(
            "async, await each: aio-pika vs apublish()",
            Contender("aio-pika await each", each, on_loop(loop, raw_async.aio_pika_each)),
            Contender(
                "rabbitbus.apublish", each, on_loop(loop, lambda n: rabbitbus_aeach(topology, n))
            ),
        ),
        Comparison(
            "context: pika connection per message vs publish()",
            Contender(
                "pika connection per message",
                per_connection,
                lambda n: pika_connection_per_message(topology, n),
            ),
            Contender(
                "rabbitbus.publish (short run)",
                per_connection,
                lambda n: rabbitbus_each(topology, n),
            ),
        ),
    ]


def unique(contenders: Sequence[Contender]) -> list[Contender]:
    """Contenders in first-seen order, each once (a raw reference may serve several rows)."""
    seen: dict[int, Contender] = {}
    for contender in contenders:
        seen.setdefault(id(contender), contender)
    return list(seen.values())


def check_depth(topology: Topology, contender: Contender) -> None:
    """Every confirmed message must be in the queue; a shortfall voids the figures."""
    depth = topology.depth()
    if depth < contender.count:
        raise RuntimeError(f"{contender.name}: queue holds {depth} of {contender.count} messages")


def report(table: Sequence[Comparison], contenders: Sequence[Contender]) -> None:
    """Print the comparison table, then every contender's median and spread."""
    print()
    print(format_table([comparison.row() for comparison in table]))
    print()
    print("| contender | messages | median msg/s | min-max msg/s |")
    print("|---|--:|--:|--:|")
    for contender in contenders:
        print(
            f"| {contender.name} | {contender.count:,} | {median(contender.rates):,.0f} "
            f"| {spread(contender.rates)} |"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Message counts per timed run, and the number of rounds."""
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="per one-at-a-time run")
    parser.add_argument("--batch-messages", type=int, default=10000, help="per pipelined run")
    parser.add_argument("--per-connection", type=int, default=200, help="anti-pattern run")
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Set up Django and a fresh exchange and queue, measure, clean up, report."""
    args = parse_args(argv)
    setup_django()
    print(versions("Django", "pika", "aio-pika", "aiormq", "pamqp"))
    print(f"RabbitMQ {broker_version()}, load {load_average()}")
    loop = asyncio.new_event_loop()
    with fresh_topology("bench.publish") as topology:
        raw_pika = RawPika(topology)
        raw_async = RawAsync(topology)
        try:
            loop.run_until_complete(raw_async.open())
            table = comparisons(args, topology, raw_pika, raw_async, loop)
            contenders = unique([c for row in table for c in (row.raw, row.ours)])
            interleave(
                contenders,
                args.rounds,
                before=topology.purge,
                after=lambda contender: check_depth(topology, contender),
                warmup=WARMUP,
            )
        finally:
            raw_pika.close()
            loop.run_until_complete(raw_async.close())
            with suppress(Exception):
                loop.run_until_complete(rabbitbus.transport.connections.aclose_all())
            rabbitbus.transport.connections.close_all()
            loop.close()
    report(table, contenders)
    print(f"\nload after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
