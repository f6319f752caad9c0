"""Consumer workers: one :class:`ConsumerService` per registered handler.

Semantics (at-least-once): a delivery is acked only after its handler
succeeded, or after its retry or dead-letter copy was confirmed by the broker.
Prefetched messages that have not started when shutdown begins are requeued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from rabbitbus import publishing, topology
from rabbitbus.conf import settings
from rabbitbus.consuming import dispatch, retries
from rabbitbus.consuming.acks import ChannelAcks
from rabbitbus.consuming.batching import Batcher
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.messages import PERSISTENT, Delivery, Envelope
from rabbitbus.observability import metrics, traces
from rabbitbus.runtime import service
from rabbitbus.runtime.console import Observer
from rabbitbus.runtime.service import InFlight, Kept, Runtime, Service
from rabbitbus.runtime.threads import LoopThread, Threads
from rabbitbus.transport import aio, connections, declare
from rabbitbus.transport.aio import RECOVERABLE, cancel, consume

logger = logging.getLogger("rabbitbus.consuming.worker")

#: Longest wait, in seconds, between two runs of a message held through a database outage.
DATABASE_RETRY_CAP = 10.0


class ConsumerService:
    """Consumes one queue for one handler; a :class:`rabbitbus.runtime.service.Service`."""

    #: Asks the runtime for a connection with a :class:`~rabbitbus.transport.amqp_tap.DeliveryTap`:
    #: deliveries read off the socket by hand, not by aiormq (``FAST_PATHS``).
    uses_tap = True

    def __init__(self, spec: ConsumerSpec, *, alias: str = "default") -> None:
        self.spec = spec
        self.name = spec.name
        self.alias = alias
        self.threads = (
            LoopThread(f"Consumer {spec.name!r}", inline_warning_after(alias))
            if spec.inline
            else Threads(spec.concurrency, f"rabbitbus-{spec.queue}")
        )
        self.slots = asyncio.Semaphore(spec.concurrency)
        #: Group commit (``transaction="batch"``): deliveries wait here for a batch.
        self.batcher = (
            Batcher(
                spec, self.threads, self._dispatch, lambda: self.stopping or service.signalled()
            )
            if spec.batched
            else None
        )
        self.connection: Any = None
        self.channel: aio.Channel | None = None
        self.recovery: asyncio.Future[None] | None = None
        self.acks: ChannelAcks | None = None
        #: Deliveries the tap took, being handled.
        self.kept = Kept()
        self.consumer_tag: str | None = None
        self.stopped = asyncio.Event()
        #: The database error of an outage the handler is waiting out, once logged.
        self.database_down: str | None = None
        self.in_flight = InFlight()
        self.counts = {"processed": 0, "failed": 0, "retried": 0, "dead_lettered": 0}
        #: Told of each message's outcome (``rabbit_consume -v 2``); see rabbitbus.runtime.console.
        self.observer: Observer | None = None

    # -- Service -----------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stopped.is_set()

    async def start(self, connection: aio.Connection) -> None:
        self.connection = connection
        await self._subscribe(await aio.channel(connection))

    async def _subscribe(self, channel: aio.Channel) -> None:
        """Declare and consume on ``channel``, and watch it for the broker's cancel or close."""
        channel.on_consumer_cancel_callbacks.add(self._on_cancel)
        if channel is not self.channel or self.acks is None:
            self.acks = ChannelAcks(channel)  # else resubscribing: its deliveries keep their acks
            channel.closing.add_done_callback(functools.partial(self._on_channel_closed, channel))
        self.channel = channel
        on_message = functools.partial(self.on_message, self.acks)
        aio.take_deliveries(
            self.connection, channel, functools.partial(self.on_delivery, self.acks), ordered=True
        )
        self.consumer_tag = await consume(
            channel, self.topology(), self.spec.queue, self.spec.prefetch, on_message
        )

    async def stop(self) -> None:
        self.stopped.set()
        if self.recovery is not None:
            self.recovery.cancel()
        await cancel(self.channel, self.consumer_tag, self.spec.queue)

    # -- the broker took our consumer away, the connection lives on ----------

    def _on_cancel(self, frame: aio.CancelFrame) -> None:
        # A deleted queue cancels its consumers; idling then would be silent death (aio-pika#334).
        if frame.consumer_tag == self.consumer_tag:
            self._recover(f"was cancelled by the broker (queue {self.spec.queue!r} deleted?)")

    def _on_channel_closed(self, channel: Any, closing: asyncio.Future[Any]) -> None:
        error = None if closing.cancelled() else closing.exception()
        # Channel errors only: a lost connection is the runtime's to restore.
        if channel is self.channel and isinstance(error, aio.ChannelError):
            self._recover(f"lost its channel: {channel_close_reason(error)}")

    def _recover(self, why: str) -> None:
        if self.stopping or (self.recovery is not None and not self.recovery.done()):
            return
        logger.warning("Consumer %s %s; consuming again", self.name, why)
        self.recovery = asyncio.ensure_future(self._resubscribe(self.connection))

    async def _resubscribe(self, connection: aio.Connection) -> None:
        """Consume again on the same connection; if that fails, hand over to the runtime."""
        channel = self.channel
        try:
            if channel is None or channel.is_closed:
                channel = await aio.channel(connection)
            await self._subscribe(channel)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the runtime takes over
            # aiormq raises a bare Exception for a channel opened on a connection that is
            # closing (a cluster node lost): as much a reason to reconnect as the others.
            logger.warning(
                "Could not consume %s again (%s: %s); reconnecting", self.name,
                type(exc).__name__, exc,
            )  # fmt: skip
            await aio.close(connection, exc)  # the runtime reconnects and starts us, or exits

    async def drain(self) -> None:
        await self.in_flight.idle()
        if self.acks is not None:
            await self.acks.settled()
        self.threads.shutdown()

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

    def on_delivery(self, acks: ChannelAcks, raw: Delivery) -> None:
        """A delivery the tap read (in the loop, in the socket's callback)."""
        self._taken(acks, raw)
        self.kept.start(self._handled(acks, raw))

    async def on_message(self, acks: ChannelAcks, message: aio.Incoming) -> None:
        """A delivery aiormq read (no tap, or one the tap does not read)."""
        raw = aio.delivery_of(message)
        self._taken(acks, raw)
        await self._handled(acks, raw)

    def _taken(self, acks: ChannelAcks, raw: Delivery) -> None:
        acks.delivered(raw.delivery_tag)
        self.in_flight.__enter__()  # before the task starts: a drain must wait for it

    async def _handled(self, acks: ChannelAcks, raw: Delivery) -> None:
        try:
            await self._handle(acks, raw)
        finally:
            self.in_flight.__exit__()

    async def _handle(self, acks: ChannelAcks, raw: Delivery) -> None:
        started = time.perf_counter() if metrics.on else 0.0
        tag = raw.delivery_tag
        if self.batcher is not None:
            batched = await self.batcher.submit(raw)
            if batched is None:
                await self._requeue(acks, tag)  # not started: another worker takes it now
            else:
                await self._settle(acks, tag, raw, batched, started)
            return
        async with self.slots:
            if self.stopping or service.signalled():
                # Not started: give it back so another worker takes it now.
                await self._requeue(acks, tag)
                return
            outcome = await (self._traced(raw) if traces.on else self._dispatch(raw))
            await self._settle(acks, tag, raw, outcome, started)

    async def _settle(
        self,
        acks: ChannelAcks,
        tag: int,
        raw: Delivery,
        outcome: dispatch.Outcome,
        started: float = 0.0,
    ) -> None:
        """Carry out ``outcome``: ack, park (retry or dead-letter copy, then ack) or requeue.
        ``started``: ``time.perf_counter()`` when the delivery was taken up (for metrics)."""
        settled = True
        if outcome.action == dispatch.DATABASE_DOWN:
            await self._requeue(acks, tag)  # stopping: the next worker runs it
            told, settled = "held through a database outage, requeued", False
        elif outcome.action == dispatch.ACK:
            self.counts["processed"] += 1
            acks.ack(tag)
            told = "processed"
        elif await self._park(raw, outcome):
            acks.ack(tag)
            told = _parked(outcome)
        else:
            await self._requeue(acks, tag)
            told, settled = "failed, requeued", False
        if metrics.on:
            metrics.consumed(self.spec, outcome, settled, started)
        if self.observer is not None:
            self.observer(self.name, told, raw.message_id)

    async def _dispatch(self, raw: Delivery) -> dispatch.Outcome:
        """The handler's outcome, holding the message through a database outage (with
        capped backoff, no attempt counted) until the database answers or we stop."""
        outcome = await dispatch.dispatch(self.spec, raw, self.threads)
        delays = None
        while outcome.action == dispatch.DATABASE_DOWN:
            if self.database_down is None:
                self.database_down = f"{type(outcome.error).__name__}: {outcome.error}"
                logger.warning(
                    "Database unreachable (%s); %s holds its messages and retries them",
                    self.database_down, self.name,
                )  # fmt: skip
            delays = delays or connections.backoff_delays(base=0.5, cap=DATABASE_RETRY_CAP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), next(delays))
            if self.stopping:
                return outcome
            outcome = await dispatch.dispatch(self.spec, raw, self.threads)
        if self.database_down is not None:
            self.database_down = None
            logger.info("Database reachable again; %s is handling messages", self.name)
        return outcome

    async def _traced(self, raw: Delivery) -> dispatch.Outcome:
        """:meth:`_dispatch` under a ``process`` span continuing the message's trace."""
        if not traces.active():
            return await self._dispatch(raw)
        with traces.processing(
            self.spec.queue, raw.routing_key, raw.message_id, raw.headers, self.name
        ) as span:
            outcome = await self._dispatch(raw)
            traces.settled(span, outcome.action, outcome.error)
        return outcome

    async def _park(self, raw: Delivery, outcome: dispatch.Outcome) -> bool:
        """Publish the retry or dead-letter copy with confirms; False if that failed."""
        self.counts["failed"] += 1
        envelope = self._copy(raw, outcome)
        failure = await publishing.asend_envelope(envelope, publishing_connection(self.alias), None)
        if failure is not None:
            logger.warning("Could not park message %s (%s); requeueing it", raw.message_id, failure)
            return False
        self.counts["retried" if outcome.action == dispatch.RETRY else "dead_lettered"] += 1
        return True

    async def _requeue(self, acks: ChannelAcks, tag: int) -> None:
        try:
            await acks.nack(tag, requeue=True)
        except (*RECOVERABLE, RuntimeError) as exc:
            # The channel died after delivery: the broker already requeued it (aio-pika#312).
            logger.info("Delivery %s belongs to a closed channel (%s); it will be redelivered",
                        tag, type(exc).__name__)  # fmt: skip

    def _copy(self, raw: Delivery, outcome: dispatch.Outcome) -> Envelope:
        return parked_copy(self.spec, raw, outcome)


def parked_copy(spec: ConsumerSpec, raw: Delivery, outcome: dispatch.Outcome) -> Envelope:
    """The retry or dead-letter copy of ``raw``, published before the original is acked."""
    attempt = retries.attempt_of(raw.headers, spec.attempts)
    origin = retries.origin_of(raw.headers, raw.exchange, raw.routing_key)
    if outcome.action == dispatch.RETRY:
        queue = retries.retry_queue(spec.queue, outcome.delay_ms)
        headers = retries.retry_headers(raw.headers, attempt + 1, origin)
    else:
        queue = spec.dead_letter_queue
        headers = retries.dead_letter_headers(
            raw.headers, outcome.error or "unknown", attempt, origin
        )
    return copy_envelope(raw, queue, headers)


def _parked(outcome: dispatch.Outcome) -> str:
    where = "retried later" if outcome.action == dispatch.RETRY else "dead-lettered"
    error = outcome.error
    why = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
    return f"failed ({why or 'unknown'}), {where}"


def channel_close_reason(error: BaseException) -> str:
    """Why the broker closed a channel, naming ``consumer_timeout`` when that was it."""
    _, text = declare.aiormq_reply(error)  # e.g. "PRECONDITION_FAILED - unknown delivery tag 7"
    if isinstance(error, aio.PreconditionFailed) and "timed out" in text:
        # https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout
        return f"a delivery stayed unacked past the broker's consumer_timeout ({text})"
    return text


def copy_envelope(raw: Delivery, queue: str, headers: dict[str, Any]) -> Envelope:
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
    return connections.get_async(alias)


def inline_warning_after(alias: str) -> float:
    """Seconds an inline handler may hold the event loop before the worker warns: a third
    of the connection's heartbeat timeout (RabbitMQ closes a connection silent for about
    one timeout), or 10 s with heartbeats off."""
    heartbeat = settings.connection(alias).heartbeat
    return heartbeat / 3 if heartbeat > 0 else 10.0


def summary(specs: Sequence[ConsumerSpec]) -> list[str]:
    """One line per consumer: name, handler kind, queue, bindings and limits."""
    lines = []
    for spec in specs:
        kind = "async" if spec.is_async else "sync"
        bound = ", ".join(f"{ex}[{key}]" for ex, key in spec.bindings) or "-"
        lines.append(
            f"{spec.name} ({kind}) queue={spec.queue} ({spec.queue_type}) bindings={bound} "
            f"prefetch={spec.prefetch} concurrency={spec.concurrency} attempts={spec.attempts}"
            f"{' idempotent' if spec.idempotent else ''}{' batch' if spec.batched else ''}"
            f"{' many' if spec.many else ''}{' inline' if spec.inline else ''}"
        )
    return lines


def run(
    specs: Sequence[ConsumerSpec],
    *,
    alias: str = "default",
    services: Sequence[Service] = (),
    loop: str | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run ``specs`` and any other ``services`` (RPC servers) until SIGTERM/SIGINT,
    then drain and return (blocking). ``loop``: see :mod:`rabbitbus.runtime.event_loop`.
    ``runtime``: one made by :func:`consumer_runtime` (to watch it), else a new one."""
    from rabbitbus.runtime import event_loop

    event_loop.run(serve(specs, alias=alias, services=services, runtime=runtime), loop)


async def serve(
    specs: Sequence[ConsumerSpec],
    *,
    alias: str = "default",
    runtime: Runtime | None = None,
    handle_signals: bool = True,
    services: Sequence[Service] = (),
) -> None:
    """The async body of :func:`run`: the runtime plus its heartbeat."""
    from rabbitbus.runtime import health

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
