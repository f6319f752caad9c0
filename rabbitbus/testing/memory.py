"""An in-memory broker: routes what is published to registered consumers, eagerly.

:class:`InMemoryBroker` is a :class:`~rabbitbus.testing.capture.Capture` that
also routes each message by RabbitMQ's rules (:mod:`rabbitbus.testing.routing`)
over the project's topology (settings plus everything registered), and runs the
consumers of the queues it reaches as the worker would
(:func:`rabbitbus.testing.consumers.adispatch`). A handler that publishes feeds
the next consumer after it returns, breadth first, up to ``max_depth`` hops.
Errors are the real publish's: :class:`ExchangeNotFound` for a missing exchange,
:class:`Unroutable` for a mandatory message no queue takes.

Retried messages wait in their retry queue until :meth:`InMemoryBroker.release_retries`
(their TTL expiring); dead letters stay in ``<queue>.dlq``. RPC calls are answered by
stubs first, then by the registered procedures, run in memory.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from asgiref.sync import sync_to_async

from rabbitbus import rpc, serializers
from rabbitbus import topology as topology_module
from rabbitbus.consuming import registry
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import PublishError
from rabbitbus.messages import Delivery, Envelope
from rabbitbus.rpc import client as rpc_client
from rabbitbus.rpc import server as rpc_server
from rabbitbus.testing import routing
from rabbitbus.testing.capture import Capture
from rabbitbus.testing.consumers import (
    ConsumerOutcome,
    InlineThreads,
    adispatch,
    delivery_of,
    run_sync,
    runs_on_loop,
    spec_for,
)
from rabbitbus.testing.published import Published, PublishedMessage, from_envelope
from rabbitbus.transport.confirms import Outcome, unroutable


class ChainTooDeep(RuntimeError):
    """Consumers kept publishing to consumers past ``max_depth`` hops (a loop?)."""


@dataclass(frozen=True)
class Handled:
    """One delivery a consumer handled, and what the worker would have done."""

    consumer: str
    queue: str
    message: PublishedMessage
    outcome: ConsumerOutcome


@dataclass(frozen=True)
class _Delivery:
    spec: ConsumerSpec
    envelope: Envelope
    depth: int


class InMemoryBroker(Capture):
    """Routes and consumes in memory; use as a context manager (see the module docstring).

    ``consumers``: the consumers to run, by name, handler or spec (default:
    every registered one); the queues of the others still take messages. ``topology``: instead of
    :func:`rabbitbus.topology.configured`. ``relay_outbox=True``: outbox rows are
    relayed after each handler and before each read, so chains through the outbox run.
    """

    def __init__(
        self,
        *,
        consumers: Iterable[str | Callable[..., Any] | ConsumerSpec] | None = None,
        topology: topology_module.Topology | None = None,
        max_depth: int = 20,
        relay_outbox: bool = False,
    ) -> None:
        super().__init__(relay_outbox=relay_outbox)
        self.topology = topology_module.configured() if topology is None else topology
        chosen = registry.consumers.values() if consumers is None else map(spec_for, consumers)
        self.consumers = {spec.queue: spec for spec in chosen}
        self.max_depth = max_depth
        #: Every message each queue received, in order (retry and dead-letter queues too).
        self.queues: dict[str, list[PublishedMessage]] = {}
        #: Every delivery a consumer handled, in order.
        self.handled: list[Handled] = []
        self._pending: deque[_Delivery] = deque()
        self._retrying: list[_Delivery] = []
        self._depth = 0
        self._draining = threading.Lock()

    # -- reading --------------------------------------------------------------------

    def queue(self, name: str) -> Published:
        """What queue ``name`` received."""
        return Published(self.queues.get(name, []))

    def dead_letters(self, consumer: str) -> Published:
        """The dead letters of consumer ``consumer`` (its ``<queue>.dlq``)."""
        return self.queue(registry.find(consumer).dead_letter_queue)

    def outcomes(self, consumer: str | None = None) -> list[ConsumerOutcome]:
        """The outcomes of every delivery handled (by ``consumer`` only, if given)."""
        chosen = consumer and registry.find(consumer).name
        return [h.outcome for h in self.handled if chosen in (None, h.consumer)]

    # -- routing --------------------------------------------------------------------

    def deliver(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        return {envelope.message_id: self._route(envelope) for envelope in envelopes}

    def _route(self, envelope: Envelope) -> Outcome:
        try:
            queues = routing.route(
                self.topology, envelope.exchange, envelope.routing_key, envelope.headers
            )
        except PublishError as exc:
            return exc
        if not queues and envelope.mandatory:
            return unroutable(envelope.exchange, envelope.routing_key, "NO_ROUTE")
        for queue in queues:
            self._enqueue(queue, envelope)
        return None

    def _enqueue(self, queue: str, envelope: Envelope) -> None:
        self.queues.setdefault(queue, []).append(from_envelope(envelope, "default"))
        spec = self.consumers.get(queue)
        if spec is not None:
            self._pending.append(_Delivery(spec, envelope, self._depth + 1))

    # -- consuming --------------------------------------------------------------------

    def send(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        outcomes = super().send(envelopes, connection)
        self.drain()
        return outcomes

    async def asend(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        outcomes = super().send(envelopes, connection)
        await self.adrain()
        return outcomes

    def drain(self) -> None:
        """Run the consumers of every pending delivery, and of what they publish."""
        # A handler that publishes finds the lock taken: the running drain delivers it.
        # Re-checking after release catches what another thread queued meanwhile.
        while self._pending and self._draining.acquire(blocking=False):
            try:
                while delivery := self._next():
                    raw = self._raw(delivery)
                    outcome = run_sync(
                        adispatch(delivery.spec, raw), on_loop=runs_on_loop(delivery.spec)
                    )
                    self._settle(delivery, outcome)
            finally:
                self._draining.release()

    async def adrain(self) -> None:
        """The async twin of :meth:`drain` (``def`` handlers run through ``sync_to_async``)."""
        while self._pending and self._draining.acquire(blocking=False):
            try:
                while delivery := self._next():
                    if runs_on_loop(delivery.spec):
                        outcome = await adispatch(delivery.spec, self._raw(delivery))
                    else:
                        outcome = await sync_to_async(self._run_def)(delivery)
                    self._settle(delivery, outcome)
            finally:
                self._draining.release()

    def _run_def(self, delivery: _Delivery) -> ConsumerOutcome:
        return run_sync(adispatch(delivery.spec, self._raw(delivery)), on_loop=False)

    def _next(self) -> _Delivery | None:
        if not self._pending:
            return None
        delivery = self._pending.popleft()
        if delivery.depth > self.max_depth:
            self._pending.clear()
            raise ChainTooDeep(
                f"Consumer {delivery.spec.name!r} would handle a message {delivery.depth} hops "
                f"from the first publish (max_depth={self.max_depth}).\n{self.summary()}"
            )
        self._depth = delivery.depth
        return delivery

    def _raw(self, delivery: _Delivery) -> Delivery:
        return delivery_of(delivery.envelope)

    def _settle(self, delivery: _Delivery, outcome: ConsumerOutcome) -> None:
        """Record ``outcome``, park its copy, relay what the handler wrote to the outbox."""
        record = from_envelope(delivery.envelope, "default")
        self.handled.append(Handled(delivery.spec.name, delivery.spec.queue, record, outcome))
        if outcome.copy is not None:
            self.queues.setdefault(outcome.copy.routing_key, []).append(
                from_envelope(outcome.copy, "default")
            )
            if outcome.retried:
                self._retrying.append(replace(delivery, envelope=outcome.copy))
        if self.auto_relay:
            self.relay_outbox()
        self._depth = 0

    def release_retries(self) -> int:
        """Deliver every retried message again (as if its delay expired); returns how many."""
        waiting, self._retrying = self._retrying, []
        for delivery in waiting:
            again = replace(delivery.envelope, routing_key=delivery.spec.queue)
            self._pending.append(replace(delivery, envelope=again, depth=1))
        self.drain()
        return len(waiting)

    # -- RPC ------------------------------------------------------------------------------

    def answer(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        proc = self._procedure(name)
        reply = rpc_server.handle(proc, req.body, req.content_type, InlineThreads())
        _, body = run_sync(reply, on_loop=proc.is_async)
        return body, serializers.default().content_type

    async def aanswer(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        proc = self._procedure(name)
        if not proc.is_async:
            return await sync_to_async(self.answer)(name, req, timeout)
        _, body = await rpc_server.handle(proc, req.body, req.content_type, InlineThreads())
        return body, serializers.default().content_type

    def _procedure(self, name: str) -> rpc.Procedure:
        proc = rpc.registered().get(name)
        if proc is None:
            raise rpc_client.no_route(name)
        return proc
