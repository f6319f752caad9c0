"""The RPC server: one :class:`RpcService` per procedure, run by the worker runtime.

``rabbit_rpc`` runs a :class:`~rabbitbus.runtime.service.Runtime` of RPC services;
``rabbit_consume --rpc`` adds them to a consumer worker's runtime. Either way
they share its signal handling, graceful drain, reconnection and heartbeat.

Requests without ``reply_to`` or ``correlation_id`` are rejected unexecuted
(dropped, logged): an RPC nobody can receive the answer to is a caller bug,
and fire-and-forget work belongs on a consumer queue. Replies go only to
``reply_to`` addresses starting with one of ``RPC_REPLY_TO_PREFIXES``, so a
request cannot make the server publish into an arbitrary application queue.

A request is never started past its caller's deadline (:func:`rabbitbus.rpc.expired`),
whether it waited in the queue, in the prefetch buffer or for a free slot: it is
acked unanswered (its caller has given up), counted as ``expired`` in the
service's stats, and logged at INFO once per burst of such requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

from rabbitbus import serializers, topology
from rabbitbus.conf import settings
from rabbitbus.consuming.dispatch import with_fresh_db
from rabbitbus.exceptions import ConfigurationError, DecodeError, SerializationError
from rabbitbus.messages import Delivery
from rabbitbus.observability import metrics, traces
from rabbitbus.rpc.procedures import (
    REPLY_TYPE,
    Procedure,
    decode_request,
    error_reply,
    expired,
    ok_reply,
    registered,
    rpc_queue,
)
from rabbitbus.runtime import event_loop
from rabbitbus.runtime.console import Observer
from rabbitbus.runtime.service import InFlight, Kept, Runtime
from rabbitbus.runtime.threads import Threads
from rabbitbus.transport import aio, amqp_tap, replies
from rabbitbus.transport.aio import cancel, consume

logger = logging.getLogger("rabbitbus.rpc.server")

#: Defaults of ``rabbit_rpc --prefetch`` and ``--concurrency``.
PREFETCH = 20
CONCURRENCY = 10
#: Seconds without an expired request after which the next one starts a new burst (and
#: a new log line).
BURST_GAP = 10.0


def request_problem(reply_to: str | None, correlation_id: str | None) -> str | None:
    """Why a request must not be executed, or ``None`` if it may."""
    if not reply_to:
        return "no reply_to"
    if not correlation_id:
        return "no correlation_id"
    if not reply_to.startswith(tuple(settings.RPC_REPLY_TO_PREFIXES)):
        return "reply_to is not a reply address"
    return None


def _in_db_scope(proc: Procedure, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return with_fresh_db(lambda: proc.func(*args, **kwargs))


async def run_procedure(
    proc: Procedure, args: list[Any], kwargs: dict[str, Any], threads: Threads | None
) -> Any:
    """Run ``proc``: ``async def`` on the loop, ``def`` in ``threads`` (or a thread of
    asyncio's default executor)."""
    if proc.is_async:
        return await proc.func(*args, **kwargs)
    if threads is None:
        return await asyncio.to_thread(_in_db_scope, proc, args, kwargs)
    call = traces.in_this_context(_in_db_scope) if traces.on else _in_db_scope
    return await threads.run(call, proc, args, kwargs)


async def handle(
    proc: Procedure, body: bytes, content_type: str | None, threads: Threads | None = None
) -> tuple[bool, bytes]:
    """``(ok, reply body)`` for one request; exceptions become error replies, never raise."""
    try:
        args, kwargs = decode_request(body, content_type)
    except DecodeError as exc:
        return False, error_reply(exc, code="bad_request")
    try:
        result = await run_procedure(proc, args, kwargs, threads)
    except Exception as exc:  # noqa: BLE001 - errors travel as data
        logger.info("RPC procedure %s raised %s", proc.name, type(exc).__name__)
        return False, error_reply(exc)
    try:
        return True, ok_reply(result)
    except SerializationError as exc:
        return False, error_reply(exc, code="bad_result")


def select(names: Sequence[str]) -> list[Procedure]:
    """The procedures to serve: ``names``, or all registered ones."""
    procedures = registered()
    unknown = sorted(set(names) - set(procedures))
    if unknown:
        raise ConfigurationError(f"Unknown RPC procedure(s): {', '.join(unknown)}")
    chosen = [procedures[name] for name in names] or list(procedures.values())
    if not chosen:
        raise ConfigurationError("No RPC procedures are registered (see <app>/rabbit.py).")
    return chosen


class RpcService:
    """Serves one procedure from its queue; a :class:`rabbitbus.runtime.service.Service`.

    Up to ``concurrency`` requests run at once (``def`` procedures in as many
    threads); a request is acked once its reply is published, or rejected
    unexecuted (see the module docstring). Requests prefetched but not started
    when shutdown begins are requeued for another server.
    """

    #: Asks the runtime for a connection with a :class:`~rabbitbus.transport.amqp_tap.DeliveryTap`.
    uses_tap = True

    def __init__(
        self, proc: Procedure, *, prefetch: int = PREFETCH, concurrency: int = CONCURRENCY
    ) -> None:
        self.proc = proc
        self.name = f"rpc:{proc.name}"
        self.prefetch = prefetch
        self.concurrency = concurrency = proc.slots(concurrency)  # the procedure's cap, if lower
        self.threads = Threads(concurrency, "rabbitbus-rpc")
        self.slots = asyncio.Semaphore(concurrency)
        self.in_flight = InFlight()
        self.channel: aio.Channel | None = None
        self.consumer_tag: str | None = None
        self.stopping = False
        self.counts = {"processed": 0, "failed": 0, "retried": 0, "rejected": 0, "expired": 0}
        self.expired_at = -BURST_GAP  # monotonic time of the last expired request
        #: Told of each request's outcome (``rabbit_rpc -v 2``); see rabbitbus.runtime.console.
        self.observer: Observer | None = None
        self.tap: amqp_tap.DeliveryTap | None = None
        self.kept = Kept()

    # -- Service -----------------------------------------------------------

    async def start(self, connection: aio.Connection) -> None:
        channel = await aio.channel(connection, publisher_confirms=False)
        entities = topology.Topology()
        entities.add(rpc_queue(self.proc.name))
        self.channel = channel
        self.tap = aio.take_deliveries(connection, channel, self.on_delivery, ordered=False)
        channel.on_consumer_cancel_callbacks.add(functools.partial(self._on_cancel, connection))
        self.consumer_tag = await consume(
            channel, entities, self.proc.queue, self.prefetch, self.on_message
        )
        logger.info("Serving RPC: %s", summary([self])[0])

    def _on_cancel(self, connection: aio.Connection, frame: aio.CancelFrame) -> None:
        """The broker cancelled our consumer: the queue was deleted, or its cluster node
        died. Serving nothing from then on would be silent death (callers would get
        NoServer for good): the connection is closed, so the runtime reconnects and
        starts every procedure again, waiting with backoff while the queue's node is down."""
        if frame.consumer_tag != self.consumer_tag or self.stopping:
            return
        why = f"RPC consumer of {self.proc.queue!r} cancelled by the broker (queue gone?)"
        logger.warning("%s; reconnecting", why)
        self.kept.start(aio.close(connection, ConnectionError(why)))

    async def stop(self) -> None:
        self.stopping = True
        await cancel(self.channel, self.consumer_tag, self.proc.queue)

    async def drain(self) -> None:
        await self.in_flight.idle()
        self.threads.shutdown()

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)

    # -- requests ----------------------------------------------------------

    def on_delivery(self, delivery: Delivery) -> None:
        """A request read by the tap (in the loop, in the socket's callback)."""
        channel = cast(aio.Channel, self.channel)
        self.in_flight.__enter__()  # before the task starts: a drain must wait for it
        self.kept.start(self._request(channel, delivery))

    async def on_message(self, message: aio.Incoming) -> None:
        """A request that came through aiormq (when no tap took it)."""
        self.in_flight.__enter__()
        await self._request(message.channel, aio.delivery_of(message))

    async def _request(self, channel: aio.Channel, request: Delivery) -> None:
        try:
            async with self.slots:
                if self.stopping:
                    await replies.reject(
                        channel, request, requeue=True
                    )  # not started: another server takes it
                    return
                if expired(request.deadline, time.time()):
                    await self._drop_expired(channel, request)
                    return
                await self._serve(channel, request)
        finally:
            self.in_flight.__exit__()

    async def _drop_expired(self, channel: aio.Channel, request: Delivery) -> None:
        """Ack ``request`` unstarted: its caller has given up. One INFO line per burst."""
        self.counts["expired"] += 1
        if metrics.on:
            metrics.rpc_request(self.proc.name, "expired")
        now = time.monotonic()
        if now - self.expired_at > BURST_GAP:
            logger.info(
                "Dropping RPC requests to %s that waited past their callers' deadlines "
                "(not run; %d so far, counted as 'expired')",
                self.proc.name,
                self.counts["expired"],
            )
        self.expired_at = now
        await replies.ack(channel, request, self.tap)

    async def _serve(self, channel: aio.Channel, request: Delivery) -> None:
        problem = request_problem(request.reply_to, request.correlation_id)
        if problem is not None:
            logger.warning(
                "Rejecting RPC request %s for %s: %s", request.message_id, self.proc.name, problem
            )
            self.counts["rejected"] += 1
            if metrics.on:
                metrics.rpc_request(self.proc.name, "rejected")
            await replies.reject(channel, request, requeue=False)
            return
        started = time.perf_counter() if metrics.on else 0.0
        if traces.on:
            ok, body = await self._traced(request)
        else:
            ok, body = await handle(self.proc, request.body, request.content_type, self.threads)
        self.counts["processed" if ok else "failed"] += 1
        if metrics.on:
            metrics.rpc_request(self.proc.name, "ok" if ok else "error", started)
        await replies.reply_and_ack(
            channel,
            request,
            body,
            content_type=serializers.default().content_type,
            message_type=REPLY_TYPE,
            tap=self.tap,
        )
        if self.observer is not None:
            told = "answered" if ok else "answered with an error"
            self.observer(self.name, told, request.message_id)

    async def _traced(self, request: Delivery) -> tuple[bool, bytes]:
        """:func:`handle` under a server span continuing the caller's trace."""
        with traces.rpc_span(self.proc.name, server=True, headers=request.headers) as span:
            ok, body = await handle(self.proc, request.body, request.content_type, self.threads)
            traces.settled(span, "ok" if ok else "error", None if ok else "error reply")
        return ok, body


def services(
    names: Sequence[str], *, prefetch: int = PREFETCH, concurrency: int = CONCURRENCY
) -> list[RpcService]:
    """One service per procedure in ``names`` (all registered ones if empty)."""
    return [RpcService(p, prefetch=prefetch, concurrency=concurrency) for p in select(names)]


def summary(rpc_services: Sequence[RpcService]) -> list[str]:
    """One line per procedure: name, kind, queue and limits."""
    return [
        f"{s.name} ({'async' if s.proc.is_async else 'sync'}) queue={s.proc.queue} (classic) "
        f"prefetch={s.prefetch} concurrency={s.concurrency}"
        for s in rpc_services
    ]


def run(
    names: Sequence[str],
    *,
    alias: str = "default",
    prefetch: int = PREFETCH,
    concurrency: int = CONCURRENCY,
    loop: str | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Serve ``names`` (all if empty) until SIGTERM/SIGINT, then drain and return.

    ``loop`` names the event loop (:mod:`rabbitbus.runtime.event_loop`; default: the setting).
    ``runtime``: a runtime of :func:`services` made beforehand (to watch it), else a new one.
    """
    from rabbitbus.runtime import health

    if runtime is None:
        chosen = services(names, prefetch=prefetch, concurrency=concurrency)
        runtime = Runtime(chosen, alias=alias)
    event_loop.run(health.serve(runtime, kind="rpc"), loop)
