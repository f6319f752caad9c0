"""Capture what is published, without a broker.

``capture_published()`` sets the interception hooks of
:mod:`rabbitbus.publishing` and :mod:`rabbitbus.rpc.client`, through which
every publish path goes (``publish``, ``apublish``, ``publish_many``,
``apublish_many``, ``publish_on_commit`` and bridges once their transaction
commits, the outbox relay) and every RPC request (``call``/``acall``). Each
is recorded as a :class:`~rabbitbus.testing.published.PublishedMessage` and
confirmed. RPC calls are answered by stubs (:meth:`Capture.stub_rpc`); an
unstubbed procedure raises :class:`NoRoute`, as with a broker where no server
ever declared its queue.

Outbox rows are written as usual and not relayed: :meth:`Capture.outbox` reads
them (so do ``filter`` and the assertions given ``kind="outbox"``),
:meth:`Capture.relay_outbox` relays them (into the capture), and
``capture_published(relay_outbox=True)`` relays before each read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Self

from rabbitbus import publishing, serializers
from rabbitbus.messages import Envelope
from rabbitbus.rpc import client as rpc_client
from rabbitbus.rpc.procedures import DIRECT_REPLY_TO, REQUEST_TYPE, error_reply, ok_reply
from rabbitbus.testing.published import (
    Criteria,
    Published,
    PublishedMessage,
    decoded,
    from_envelope,
)
from rabbitbus.transport import frames
from rabbitbus.transport.confirms import Outcome


@dataclass(frozen=True)
class RpcStub:
    """A canned answer for one procedure: a result, an exception, or a slow server.

    A ``delay`` at least the caller's timeout raises the caller's
    :class:`RpcTimeout` at once (no waiting); a shorter one changes nothing.
    """

    returns: Any = None
    raises: BaseException | type[BaseException] | None = None
    delay: float = 0.0

    def reply(self, name: str, timeout: float) -> rpc_client.Reply:
        if self.delay >= timeout:
            raise rpc_client.timed_out(name, timeout, consumers=1)
        if self.raises is not None:
            error = self.raises() if isinstance(self.raises, type) else self.raises
            return error_reply(error), serializers.default().content_type
        return ok_reply(self.returns), serializers.default().content_type


def from_request(
    name: str, req: rpc_client.Request, connection: str = "default"
) -> PublishedMessage:
    """The record of an RPC request, as the server's queue would receive it."""
    return PublishedMessage(
        exchange="",
        routing_key=req.routing_key,
        payload=decoded(req.body, req.content_type),
        headers={frames.DEADLINE_HEADER: req.deadline},
        properties={
            "correlation_id": req.correlation_id,
            "content_type": req.content_type,
            "type": REQUEST_TYPE,
            "reply_to": DIRECT_REPLY_TO,
            "expiration": req.expiration,
            "delivery_mode": 1,
        },
        connection=connection,
        kind="rpc",
        body=req.body,
    )


class Capture(Published):
    """The messages published while it is installed (see the module docstring)."""

    def __init__(self, *, relay_outbox: bool = False) -> None:
        super().__init__()
        self.stubs: dict[str, RpcStub] = {}
        self.auto_relay = relay_outbox
        self._lock = threading.Lock()
        self._installation: AbstractContextManager[Capture] = installed(self)

    # -- reading ----------------------------------------------------------------

    def records(self) -> list[PublishedMessage]:
        if self.auto_relay and publishing.interceptor is self:  # never relay to a real broker
            self.relay_outbox()
        return self._messages

    def clear(self) -> None:
        """Forget what was recorded so far (stubs stay)."""
        with self._lock:
            self._messages.clear()

    def outbox(self, using: str = "default") -> Published:
        """The outbox rows waiting for the relay, as records of kind ``"outbox"``."""
        from rabbitbus import outbox
        from rabbitbus.models import OutboxMessage

        rows = OutboxMessage.objects.using(using).filter(status=outbox.PENDING).order_by("id")
        return Published(
            [from_envelope(outbox.envelope_of(row), row.connection, "outbox") for row in rows]
        )

    def candidates(self, wanted: Criteria) -> list[PublishedMessage]:
        """What was sent, and for ``kind="outbox"`` the pending outbox rows too: they are
        not published yet, so no other criteria count them."""
        messages = super().candidates(wanted)  # first: relay_outbox=True relays them here
        if wanted.kind == "outbox":
            messages += self.outbox()
        return messages

    def relay_outbox(self, using: str = "default") -> int:
        """Relay every pending outbox row of ``using`` into this capture; returns how many."""
        from rabbitbus.outbox.relay import Relay

        relay, total = Relay(using=using), 0
        while claimed := relay.run_once():
            total += claimed
        return total

    # -- stubs --------------------------------------------------------------------

    def stub_rpc(
        self,
        name: str,
        *,
        returns: Any = None,
        raises: BaseException | type[BaseException] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer calls to procedure ``name`` with ``returns``, or raise ``raises`` (rebuilt
        on the caller's side as over the wire), or time out when ``delay`` >= the timeout."""
        self.stubs[name] = RpcStub(returns, raises, delay)

    # -- the interception hooks ----------------------------------------------------

    def record(self, message: PublishedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def send(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        for envelope in envelopes:
            self.record(from_envelope(envelope, connection))
        return self.deliver(envelopes, connection)

    async def asend(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        return self.send(envelopes, connection)

    def deliver(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]:
        """The outcome of each envelope: here, every one is confirmed."""
        return {envelope.message_id: None for envelope in envelopes}

    def call(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        self.record(from_request(name, req))
        stub = self.stubs.get(name)
        return stub.reply(name, timeout) if stub else self.answer(name, req, timeout)

    async def acall(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        self.record(from_request(name, req))
        stub = self.stubs.get(name)
        return stub.reply(name, timeout) if stub else await self.aanswer(name, req, timeout)

    def answer(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        """The reply to an unstubbed call: here, no server's queue exists."""
        raise rpc_client.no_route(name)

    async def aanswer(self, name: str, req: rpc_client.Request, timeout: float) -> rpc_client.Reply:
        return self.answer(name, req, timeout)

    # -- as a context manager ------------------------------------------------------

    def __enter__(self) -> Self:
        self._installation = installed(self)
        self._installation.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._installation.__exit__(*exc_info)


@contextmanager
def installed(capture: Capture) -> Iterator[Capture]:
    """Route every publish and RPC call to ``capture`` within the block (nestable)."""
    previous = publishing.interceptor, rpc_client.interceptor
    publishing.interceptor = rpc_client.interceptor = capture
    try:
        yield capture
    finally:
        publishing.interceptor, rpc_client.interceptor = previous


@contextmanager
def capture_published(*, relay_outbox: bool = False) -> Iterator[Capture]:
    """Record every publish and RPC request in the block instead of sending it.

    ``relay_outbox=True`` relays pending outbox rows into the capture before
    each read. Usable in ``django.test.TestCase`` (with
    ``captureOnCommitCallbacks(execute=True)`` for on-commit publishing).
    """
    with installed(Capture(relay_outbox=relay_outbox)) as capture:
        yield capture
