"""Consumer workers: one :class:`ConsumerService` per registered handler.

Semantics (at-least-once): a delivery is acked only after its handler
succeeded, or after its retry or dead-letter copy was confirmed by the broker.
Prefetched messages that have not started when shutdown begins are requeued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiormq
import aiormq.abc

from rabbitbus import dispatch, publishing, retries, topology
from rabbitbus.messages import PERSISTENT, Envelope
from rabbitbus.registry import ConsumerSpec
from rabbitbus.runtime import RECOVERABLE, Runtime, Service, cancel, consume

logger = logging.getLogger("rabbitbus.worker")


class ConsumerService:
    """Consumes one queue for one handler; a :class:`rabbitbus.runtime.Service`."""

    def __init__(self, spec: ConsumerSpec, *, alias: str = "default") -> None:
        self.spec = spec
        self.name = spec.name
        self.alias = alias
        self.executor = ThreadPoolExecutor(
            spec.concurrency, thread_name_prefix=f"rabbitbus-{spec.queue}"
        )
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.channel: aiormq.abc.AbstractChannel | None = None
        self.consumer_tag: str | None = None
        self.stopping = False
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.counts = {"processed": 0, "failed": 0, "retried": 0, "dead_lettered": 0}

    # -- Service -----------------------------------------------------------

    async def start(self, connection: aiormq.abc.AbstractConnection) -> None:
        self.channel = await connection.channel()
        self.consumer_tag = await consume(
            self.channel, self.topology(), self.spec.queue, self.spec.prefetch, self.on_message
        )

    async def stop(self) -> None:
        self.stopping = True
        await cancel(self.channel, self.consumer_tag, self.spec.queue)

    async def drain(self) -> None:
        await self.idle.wait()
        self.executor.shutdown(wait=False)

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)

    def topology(self) -> topology.Topology:
        """This consumer's entities; a binding's undeclared exchange becomes a topic exchange."""
        known = topology.configured()
        result = topology.Topology()
        for exchange, _ in self.spec.bindings:
            result.add(known.exchanges.get(exchange) or topology.Exchange(exchange))
        result.add(*self.spec.topology())
        return result

    # -- deliveries ----------------------------------------------------------

    async def on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        self.in_flight += 1
        self.idle.clear()
        try:
            await self._handle(message)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def _handle(self, message: aiormq.abc.DeliveredMessage) -> None:
        async with self.slots:
            if self.stopping:
                # Not started: give it back so another worker takes it now.
                await self._settle(message, "nack", requeue=True)
                return
            raw = raw_of(message)
            outcome = await dispatch.dispatch(self.spec, raw, self.executor)
            await self._carry_out(message, raw, outcome)

    async def _carry_out(
        self, message: aiormq.abc.DeliveredMessage, raw: dispatch.Raw, outcome: dispatch.Outcome
    ) -> None:
        if outcome.action == dispatch.ACK:
            self.counts["processed"] += 1
            await self._settle(message, "ack")
            return
        self.counts["failed"] += 1
        envelope = self._copy(raw, outcome)
        failure = await publishing._asend_one(envelope, publishing_connection(self.alias), None)
        if failure is not None:
            logger.warning("Could not park message %s (%s); requeueing it", raw.message_id, failure)
            await self._settle(message, "nack", requeue=True)
            return
        self.counts["retried" if outcome.action == dispatch.RETRY else "dead_lettered"] += 1
        await self._settle(message, "ack")

    def _copy(self, raw: dispatch.Raw, outcome: dispatch.Outcome) -> Envelope:
        """The retry or dead-letter copy, published before the original is acked."""
        attempt = retries.attempt_of(raw.headers, self.spec.attempts)
        origin = retries.origin_of(raw.headers, raw.exchange, raw.routing_key)
        if outcome.action == dispatch.RETRY:
            queue = retries.retry_queue(self.spec.queue, outcome.delay_ms)
            headers = retries.retry_headers(raw.headers, attempt + 1, origin)
        else:
            queue = self.spec.dead_letter_queue
            headers = retries.dead_letter_headers(
                raw.headers, outcome.error or "unknown", attempt, origin
            )
        return copy_envelope(raw, queue, headers)

    async def _settle(
        self, message: aiormq.abc.DeliveredMessage, how: str, requeue: bool = False
    ) -> None:
        tag = getattr(message.delivery, "delivery_tag", None)
        if tag is None:
            return
        try:
            if how == "ack":
                await message.channel.basic_ack(tag)
            else:
                await message.channel.basic_nack(tag, requeue=requeue)
        except (*RECOVERABLE, RuntimeError) as exc:
            # The channel died after delivery: the broker already requeued it (aio-pika#312).
            logger.info("Delivery %s belongs to a closed channel (%s); it will be redelivered",
                        tag, type(exc).__name__)  # fmt: skip


def raw_of(message: aiormq.abc.DeliveredMessage) -> dispatch.Raw:
    properties = message.header.properties
    delivery: Any = message.delivery
    return dispatch.Raw(
        body=message.body,
        headers=dict(properties.headers or {}),
        exchange=delivery.exchange or "",
        routing_key=delivery.routing_key or "",
        message_id=properties.message_id,
        redelivered=bool(getattr(delivery, "redelivered", False)),
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
    )


def copy_envelope(raw: dispatch.Raw, queue: str, headers: dict[str, Any]) -> Envelope:
    """The original bytes and ids, addressed to ``queue`` through the default exchange."""
    return Envelope(
        exchange="",
        routing_key=queue,
        body=raw.body,
        message_id=raw.message_id or "",
        content_type=raw.content_type or "",
        timestamp=int(time.time()),
        app_id=None,
        headers=headers,
        delivery_mode=PERSISTENT,
        correlation_id=raw.correlation_id,
        reply_to=raw.reply_to,
    )


def publishing_connection(alias: str) -> Any:
    from rabbitbus import connections

    return connections.get_async(alias)


def summary(specs: Sequence[ConsumerSpec]) -> list[str]:
    """One line per consumer: name, handler kind, queue, bindings and limits."""
    lines = []
    for spec in specs:
        kind = "async" if spec.is_async else "sync"
        bound = ", ".join(f"{ex}[{key}]" for ex, key in spec.bindings) or "-"
        lines.append(
            f"{spec.name} ({kind}) queue={spec.queue} ({spec.queue_type}) bindings={bound} "
            f"prefetch={spec.prefetch} concurrency={spec.concurrency} attempts={spec.attempts}"
            f"{' idempotent' if spec.idempotent else ''}"
        )
    return lines


def run(
    specs: Sequence[ConsumerSpec],
    *,
    alias: str = "default",
    services: Sequence[Service] = (),
    loop: str | None = None,
) -> None:
    """Run ``specs`` and any other ``services`` (RPC servers) until SIGTERM/SIGINT,
    then drain and return (blocking). ``loop``: see :mod:`rabbitbus.event_loop`."""
    from rabbitbus import event_loop

    event_loop.run(serve(specs, alias=alias, services=services), loop)


async def serve(
    specs: Sequence[ConsumerSpec],
    *,
    alias: str = "default",
    runtime: Runtime | None = None,
    handle_signals: bool = True,
    services: Sequence[Service] = (),
) -> None:
    """The async body of :func:`run`: the runtime plus its heartbeat."""
    from rabbitbus import health

    runtime = runtime or consumer_runtime(specs, alias=alias, services=services)
    for line in summary(specs):
        logger.info("Consuming: %s", line)
    await health.serve(runtime, handle_signals=handle_signals)


def consumer_runtime(
    specs: Sequence[ConsumerSpec], *, alias: str = "default", services: Sequence[Service] = ()
) -> Runtime:
    """A runtime with one :class:`ConsumerService` per spec, then ``services``."""
    consumers = [ConsumerService(spec, alias=alias) for spec in specs]
    return Runtime([*consumers, *services], alias=alias)
