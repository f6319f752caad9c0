"""A pika channel in publisher-confirm mode that tracks many publishes at once.

pika's ``BlockingChannel`` waits for each confirm in turn and cannot time out.
This channel publishes a whole batch, then waits (with a deadline) while the
broker's acks, nacks and returns arrive, so ``publish_many`` pipelines and no
publish can hang. It drives the connection's I/O loop directly: it uses
pika 1.x's ``BlockingConnection._impl`` and ``_flush_output``, which is why
the pika requirement is pinned below 2.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import pika
import pika.exceptions
import pika.spec

from rabbitbus.exceptions import ExchangeNotFound, NotConfirmed, PublishError, Unroutable
from rabbitbus.messages import Envelope, amqp_properties

Outcome = BaseException | None

_MISSING_EXCHANGE = re.compile(r"no exchange '([^']*)'")

#: How often the I/O loop wakes while waiting, so a stalled wait notices its timeout.
TICK = 0.25

#: Work to do while the broker confirms (see :meth:`ConfirmChannel.publish`).
Meanwhile = Callable[[], None] | None


class ConfirmChannel:
    """Publishes envelopes and reports one outcome per message id.

    An outcome is ``None`` (confirmed), :class:`Unroutable`,
    :class:`NotConfirmed`, or a channel error. Ids missing from the result were
    not confirmed in time: no confirm at all arrived for ``timeout`` seconds.
    Connection loss propagates as pika's exception so the caller can reconnect
    and resend.
    """

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.connection = connection
        self._tags: dict[int, str] = {}
        self._exchanges: dict[str, str] = {}  # message id -> exchange, for a 404
        self._lowest_tag = 1
        self._next_tag = 1
        self._returned: dict[str, Unroutable] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.closed_reason: BaseException | None = None
        self._progress_at = time.monotonic()
        self._tick_timer: Any = None
        opened: list[Any] = []
        self._channel = connection._impl.channel(on_open_callback=opened.append)
        self._channel.add_on_close_callback(self._on_close)
        self._wait(lambda: bool(opened))
        selected: list[Any] = []
        self._channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected.append)
        self._channel.add_on_return_callback(self._on_return)
        self._wait(lambda: bool(selected))
        self._tick()

    def _tick(self) -> None:
        # One repeating timer, rather than one per publish: it only has to wake
        # the poll so that _wait sees the time. pika runs it inside its I/O loop.
        if self.is_open:
            self._tick_timer = self.connection._impl._adapter_call_later(TICK, self._tick)

    @property
    def is_open(self) -> bool:
        return self.closed_reason is None and self._channel.is_open

    def close(self) -> None:
        """Close the channel (BlockingConnection.close only knows its own channels)."""
        if self._tick_timer is not None:
            self.connection._impl._adapter_remove_timeout(self._tick_timer)
        if self._channel.is_open:
            self._channel.close()
            self._wait(lambda: self._channel.is_closed)

    def publish(
        self, envelopes: Sequence[Envelope], timeout: float, meanwhile: Meanwhile = None
    ) -> dict[str, Outcome]:
        """Send ``envelopes``; wait until each is settled or confirms stall for ``timeout`` s.
        ``meanwhile()`` runs once they are written to the socket, before the wait."""
        self.outcomes = {}
        self._tags.clear()
        self._exchanges = {envelope.message_id: envelope.exchange for envelope in envelopes}
        self._lowest_tag = self._next_tag
        for envelope in envelopes:
            self._tags[self._next_tag] = envelope.message_id
            self._next_tag += 1
            _publish(self._channel, envelope)
        if meanwhile is not None:
            self._wait(lambda: True)  # returns once pika's output buffer is written out
            meanwhile()
        expected = len(envelopes)
        self._progress_at = time.monotonic()
        self._wait(lambda: len(self.outcomes) >= expected, timeout)
        return self.outcomes

    def _wait(self, ready: Callable[[], bool], timeout: float | None = None) -> None:
        def stalled() -> bool:
            return timeout is not None and time.monotonic() - self._progress_at >= timeout

        self.connection._flush_output(
            lambda: ready() or self.closed_reason is not None or stalled()
        )
        if self.closed_reason is not None and not isinstance(
            self.closed_reason, pika.exceptions.ChannelClosed
        ):
            raise self.closed_reason  # the connection went down with the channel

    def _on_confirm(self, frame: Any) -> None:
        self._progress_at = time.monotonic()
        method = frame.method
        first = self._lowest_tag if method.multiple else method.delivery_tag
        for tag in range(first, method.delivery_tag + 1):
            message_id = self._tags.pop(tag, None)
            if message_id is None:
                continue  # settles a batch that already timed out
            if isinstance(method, pika.spec.Basic.Nack):
                self.outcomes[message_id] = NotConfirmed(f"Broker nacked message {message_id}")
            else:
                self.outcomes[message_id] = self._returned.pop(message_id, None)
        if method.multiple:
            self._lowest_tag = method.delivery_tag + 1

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self._returned[properties.message_id] = unroutable(
            method.exchange, method.routing_key, method.reply_text
        )

    def _on_close(self, _channel: Any, reason: BaseException) -> None:
        self.closed_reason = reason
        if not isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            return
        error = channel_error(reason.reply_code, reason.reply_text)
        for tag, message_id in list(self._tags.items()):
            # A 404 names the missing exchange: only its messages failed. The
            # others were dropped with the channel; leaving them unsettled lets
            # the caller send them again on a fresh channel.
            if not dropped_with_the_channel(self._exchanges.get(message_id), reason.reply_text):
                self.outcomes.setdefault(message_id, error)
                del self._tags[tag]


class PublicConfirmChannel:
    """:class:`ConfirmChannel`'s outcomes from pika's public API alone (``FAST_PATHS`` off).

    One publish at a time, each waiting for its confirm: slower for batches, and with no
    deadline of its own (pika's ``BlockingChannel`` cannot time out a confirm; a broker
    gone silent is noticed by heartbeats, one blocking publishers by
    ``BLOCKED_CONNECTION_TIMEOUT``). A broker channel close settles the message that
    caused it and ends the batch: the caller sends the rest again on a fresh channel.
    """

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.connection = connection
        self.outcomes: dict[str, Outcome] = {}
        self._channel = connection.channel()
        self._channel.confirm_delivery()

    @property
    def is_open(self) -> bool:
        return bool(self._channel.is_open)

    def close(self) -> None:
        if self._channel.is_open:
            self._channel.close()

    def publish(
        self, envelopes: Sequence[Envelope], timeout: float, meanwhile: Meanwhile = None
    ) -> dict[str, Outcome]:
        """Send ``envelopes`` one by one (``timeout`` is not enforced here, see above);
        ``meanwhile()`` runs before, since each publish here waits for its confirm."""
        if meanwhile is not None:
            meanwhile()
        self.outcomes = {}
        for envelope in envelopes:
            outcome: Outcome = None
            try:
                _publish(self._channel, envelope)
            except pika.exceptions.UnroutableError as exc:
                returned = exc.messages[0].method if exc.messages else None
                why = returned.reply_text if returned is not None else "NO_ROUTE"
                outcome = unroutable(envelope.exchange, envelope.routing_key, why)
            except pika.exceptions.NackError:
                outcome = NotConfirmed(f"Broker nacked message {envelope.message_id}")
            except pika.exceptions.ChannelClosedByBroker as exc:
                self.outcomes[envelope.message_id] = channel_error(exc.reply_code, exc.reply_text)
                break
            self.outcomes[envelope.message_id] = outcome
        return self.outcomes


def _publish(channel: Any, envelope: Envelope) -> None:
    """``basic_publish`` of ``envelope`` on a pika channel (its ``_impl`` or the blocking one)."""
    channel.basic_publish(
        envelope.exchange,
        envelope.routing_key,
        envelope.body,
        pika_properties(envelope),
        envelope.mandatory,
    )


def pika_properties(envelope: Envelope) -> pika.BasicProperties:
    return pika.BasicProperties(**amqp_properties(envelope))


def unroutable(exchange: str, routing_key: str, reply_text: str) -> Unroutable:
    return Unroutable(
        f"No queue is bound to exchange {exchange!r} for routing key {routing_key!r} "
        f"({reply_text}); the message was returned."
    )


def dropped_with_the_channel(exchange: str | None, reply_text: str) -> bool:
    """Whether a message to ``exchange``, unconfirmed when the broker closed its channel
    with ``reply_text``, was only dropped with it (a 404 naming another exchange as
    missing): not its fault, so it is sent again on a fresh channel, by both publish
    paths alike. Any other close fails it with the channel's error."""
    missing = _MISSING_EXCHANGE.search(reply_text)
    return missing is not None and missing.group(1) != exchange


def channel_error(reply_code: int, reply_text: str) -> PublishError:
    """Translate a broker channel close during publishing."""
    if reply_code == 404:
        return ExchangeNotFound(f"The broker refused the publish: {reply_text}")
    return PublishError(f"The broker closed the channel: {reply_code} {reply_text}")
