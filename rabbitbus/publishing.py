"""Publishing: ``publish``/``publish_many`` (pika), ``apublish``/``apublish_many`` (aio-pika).

Every publish is persistent, ``mandatory`` and confirmed by default: a call
returns only once the broker has taken responsibility for the message, and
raises a typed :class:`~rabbitbus.exceptions.PublishError` or
:class:`~rabbitbus.exceptions.BrokerConnectionError` otherwise. Lost
connections are reopened and unconfirmed messages sent again (at-least-once:
consumers must tolerate duplicates).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rabbitbus import messages
from rabbitbus.exceptions import BrokerBlocked, BrokerUnavailable, NotConfirmed, PublishTimeout
from rabbitbus.messages import Envelope, Message
from rabbitbus.observability import metrics
from rabbitbus.transport import aio_publish, connections
from rabbitbus.transport.confirms import Outcome

logger = logging.getLogger("rabbitbus.publishing")

#: Most publishes ``apublish_many`` keeps awaiting confirms at once.
ASYNC_WINDOW = 1000


class Interceptor(Protocol):
    """Takes every publish in place of the broker: an outcome per message id."""

    def send(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]: ...

    async def asend(self, envelopes: Sequence[Envelope], connection: str) -> dict[str, Outcome]: ...


#: When set (by :mod:`rabbitbus.testing`), every publish path ends here instead of
#: at a broker; ``None`` costs the hot path one check.
interceptor: Interceptor | None = None


@dataclass
class PublishResult:
    """What ``publish_many`` achieved: confirmed ids, and an error per failed id."""

    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_first(self) -> None:
        """Raise the first failure, if any."""
        for error in self.failed.values():
            raise error


def _result(envelopes: Sequence[Envelope], outcomes: dict[str, Outcome]) -> PublishResult:
    result = PublishResult()
    for envelope in envelopes:
        outcome = outcomes[envelope.message_id]
        if outcome is None:
            result.confirmed.append(envelope.message_id)
        else:
            result.failed[envelope.message_id] = outcome
    return result


def _checked_timeout(timeout: object) -> float | None:
    """``timeout`` if it is a positive number of seconds, None for ``PUBLISH_TIMEOUT``;
    checked before anything is sent (a string failed only after sending, a negative
    number timed out the message it had just sent)."""
    return messages.checked_timeout(timeout, "PUBLISH_TIMEOUT")


def _timed_out(envelope: Envelope, blocked: BrokerBlocked | None = None) -> BaseException:
    """A blocked connection explains a missing confirm better than a bare timeout."""
    return blocked or PublishTimeout(
        f"No confirm for message {envelope.message_id} in time; it may or may not be stored."
    )


# -- sync (pika) -----------------------------------------------------------


def publish(
    exchange: str,
    routing_key: str,
    payload: Any = None,
    *,
    connection: str = "default",
    timeout: float | None = None,
    meanwhile: Callable[[], None] | None = None,
    **options: Any,
) -> str:
    """Publish one message and wait for the broker's confirm.

    ``options`` are :class:`~rabbitbus.messages.Message` fields (``headers``,
    ``message_id``, ``type``, ``persistent``, ``priority``, ``expiration``,
    ``correlation_id``, ``reply_to``, ``mandatory``). Returns the message id.
    ``meanwhile()``, if given, runs once, while the broker confirms (after the
    message is written to the socket), and must not raise; it does not run if no
    connection could be had.

    Raises :class:`Unroutable`, :class:`ExchangeNotFound`, :class:`NotConfirmed`,
    :class:`PublishTimeout`, :class:`BrokerBlocked`, :class:`BrokerUnavailable`,
    :class:`SerializationError` or :class:`MessageTooLarge`; before anything is sent,
    :class:`InvalidArgument` for an exchange or routing key that is not a ``str`` AMQP
    can carry, or a ``timeout`` that is not a positive number (``None``:
    ``PUBLISH_TIMEOUT``).
    """
    timeout = _checked_timeout(timeout)
    envelope = messages.build(Message(exchange, routing_key, payload, **options))
    outcome = _send([envelope], connection, timeout, meanwhile)[envelope.message_id]
    if outcome is not None:
        raise outcome
    return envelope.message_id


def publish_many(
    batch: Iterable[Message], *, connection: str = "default", timeout: float | None = None
) -> PublishResult:
    """Publish a batch with pipelined confirms; never raises once encoding succeeded.

    Encoding errors raise before anything is sent. Returns a
    :class:`PublishResult`: every confirmed id, and every other id with the error
    that stopped it (``BrokerUnavailable`` when the broker stayed away for
    ``RECONNECT_TIMEOUT``, ``PublishTimeout``, ``BrokerBlocked``, ``Unroutable``...).
    A bad argument (see :func:`publish`) raises :class:`InvalidArgument`, before too.
    """
    timeout = _checked_timeout(timeout)
    envelopes = [messages.build(message) for message in batch]
    return _result(envelopes, _send(envelopes, connection, timeout))


def publish_envelopes(
    envelopes: Sequence[Envelope], *, connection: str = "default", timeout: float | None = None
) -> PublishResult:
    """Publish already-built envelopes (the outbox relay's bytes) with pipelined confirms.

    Same outcomes as :func:`publish_many`, but raises :class:`BrokerUnavailable`
    when no broker answered within ``RECONNECT_TIMEOUT`` (the relay then gives
    its rows back and backs off).
    """
    outcomes = _send(envelopes, connection, _checked_timeout(timeout))
    for outcome in outcomes.values():
        if isinstance(outcome, BrokerUnavailable):
            raise outcome
    return _result(envelopes, outcomes)


@metrics.observe_send
def _send(
    envelopes: Sequence[Envelope],
    alias: str,
    timeout: float | None,
    meanwhile: Callable[[], None] | None = None,
) -> dict[str, Outcome]:
    """An outcome for every envelope; never raises, never forgets a confirm.
    ``meanwhile``: see :func:`publish`."""
    if interceptor is not None:
        if meanwhile is not None:
            meanwhile()
        return interceptor.send(envelopes, alias)
    meanwhile = _once(meanwhile)
    conn = connections.get_sync(alias)
    cs = conn.settings
    outcomes: dict[str, Outcome] = {}
    pending = list(envelopes)
    reconnect_deadline: float | None = None
    delays = connections.backoff_delays()
    settled = 0
    while pending:
        channel = None
        try:
            channel = conn.confirm_channel()
            outcomes.update(channel.publish(pending, timeout or cs.publish_timeout, meanwhile))
            if not channel.is_open and len(outcomes) > settled:
                # The broker closed the channel over some messages (a missing
                # exchange); send the innocent rest again on a new channel.
                settled = len(outcomes)
                pending = _unsettled(pending, outcomes)
                continue
        except BrokerUnavailable as exc:
            return _fail(pending, outcomes, exc)  # reconnecting took the whole window already
        except connections.PIKA_CONNECTION_ERRORS as exc:
            conn.discard()
            if channel is not None:
                outcomes.update(channel.outcomes)
            if connections.blocked_too_long(exc):
                return _fail(pending, outcomes, connections.blocked(cs), exc)
            reconnect_deadline = reconnect_deadline or time.monotonic() + cs.reconnect_timeout
            if time.monotonic() >= reconnect_deadline:
                return _fail(pending, outcomes, connections.unavailable(cs, exc), exc)
            logger.debug(  # rabbitbus.transport.outage logged the loss, once for the process
                "Connection %r lost while publishing (%s); resending unconfirmed messages",
                alias,
                type(exc).__name__,
            )
            pending = _unsettled(pending, outcomes)
            time.sleep(next(delays))
            continue
        if any(isinstance(outcome, NotConfirmed) for outcome in outcomes.values()):
            conn.drop_confirm_channel(channel)
        blocked = connections.blocked(cs) if conn.blocked else None
        for envelope in pending:
            outcomes.setdefault(envelope.message_id, _timed_out(envelope, blocked))
        pending = []
    return outcomes


def _once(function: Callable[[], None] | None) -> Callable[[], None] | None:
    """``function`` that runs only on its first call (a resend after a reconnect
    must not run it again)."""
    if function is None:
        return None
    calls = [function]

    def first_call_only() -> None:
        if calls:
            calls.pop()()

    return first_call_only


def _unsettled(envelopes: Sequence[Envelope], outcomes: dict[str, Outcome]) -> list[Envelope]:
    return [e for e in envelopes if e.message_id not in outcomes]


def _fail(
    pending: Sequence[Envelope],
    outcomes: dict[str, Outcome],
    error: BaseException,
    cause: BaseException | None = None,
) -> dict[str, Outcome]:
    """``outcomes`` with ``error`` for every unsettled envelope (the confirmed stay confirmed)."""
    error.__cause__ = cause or error.__cause__
    return {**outcomes, **{e.message_id: error for e in _unsettled(pending, outcomes)}}


# -- async (aio-pika) ------------------------------------------------------


async def apublish(
    exchange: str,
    routing_key: str,
    payload: Any = None,
    *,
    connection: str = "default",
    timeout: float | None = None,
    **options: Any,
) -> str:
    """The async twin of :func:`publish`: same arguments, result and errors."""
    timeout = _checked_timeout(timeout)
    envelope = messages.build(Message(exchange, routing_key, payload, **options))
    if interceptor is not None:
        outcome = (await interceptor.asend([envelope], connection))[envelope.message_id]
    else:
        conn = connections.get_async(connection)
        outcome = await asend_envelope(envelope, conn, timeout or conn.settings.publish_timeout)
    if outcome is not None:
        raise outcome
    return envelope.message_id


async def apublish_many(
    batch: Iterable[Message], *, connection: str = "default", timeout: float | None = None
) -> PublishResult:
    """The async twin of :func:`publish_many`: up to ``ASYNC_WINDOW`` confirms in flight.

    Like the sync version, it never raises once encoding succeeded, and gives up
    on what is unconfirmed once no confirm at all has arrived for ``timeout``
    (``PUBLISH_TIMEOUT``) seconds: those ids fail with ``BrokerUnavailable``
    (the connection is lost), ``BrokerBlocked`` (an alarm) or ``PublishTimeout``.
    """
    timeout = _checked_timeout(timeout)
    envelopes = [messages.build(message) for message in batch]
    if interceptor is not None:
        return _result(envelopes, await interceptor.asend(envelopes, connection))
    conn = connections.get_async(connection)
    window = asyncio.Semaphore(ASYNC_WINDOW)
    progress_at = [time.monotonic()]

    async def send(envelope: Envelope) -> Outcome:
        async with window:
            # No per-message timeout (an asyncio.timeout each costs ~10%): the watch below.
            outcome: Outcome = await asend_envelope(envelope, conn, None)
        progress_at[0] = time.monotonic()
        return outcome

    tasks = [asyncio.ensure_future(send(envelope)) for envelope in envelopes]
    await _until_done_or_stalled(tasks, progress_at, timeout or conn.settings.publish_timeout, conn)
    return _result(
        envelopes,
        {
            envelope.message_id: _stalled(envelope, conn) if task.cancelled() else task.result()
            for envelope, task in zip(envelopes, tasks, strict=True)
        },
    )


def _stalled(envelope: Envelope, conn: connections.AsyncConnection) -> BaseException:
    """Why ``envelope`` got no confirm in time: the broker away, blocking us, or silent."""
    if not conn.ready:
        return connections.unavailable(conn.settings)
    return _timed_out(envelope, connections.blocked(conn.settings) if conn.blocked else None)


async def _until_done_or_stalled(
    tasks: Sequence[asyncio.Future[Outcome]],
    progress_at: list[float],
    timeout: float,
    conn: connections.AsyncConnection,
) -> None:
    """Wait for ``tasks``; cancel the rest once no confirm came for ``timeout`` seconds
    while connected, or once the connection has been lost for ``RECONNECT_TIMEOUT``
    (one window for the whole batch, as the sync ``publish_many`` has)."""
    pending: set[asyncio.Future[Outcome]] = set(tasks)
    lost_at: float | None = None
    while pending:
        _, pending = await asyncio.wait(pending, timeout=min(timeout, 1.0))
        now = time.monotonic()
        if conn.ready:
            lost_at = None
        else:
            lost_at = lost_at or now
            progress_at[0] = now  # waiting for a reconnect is not a stall
        stalled = now - progress_at[0] >= timeout
        gone = lost_at is not None and now - lost_at >= conn.settings.reconnect_timeout
        if pending and (stalled or gone):
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return


@metrics.observe_asend
async def asend_envelope(
    envelope: Envelope, conn: connections.AsyncConnection, timeout: float | None
) -> Outcome:
    """Publish ``envelope`` and return its outcome; a lost connection is waited for
    (and the message sent again) for ``RECONNECT_TIMEOUT`` at most."""
    loop = asyncio.get_running_loop()
    window = conn.settings.reconnect_timeout
    reconnect_deadline: float | None = None
    delays = connections.backoff_delays()
    while True:
        try:
            if not conn.ready:  # aio-pika would wait for the reconnect with no deadline
                reconnect_deadline = reconnect_deadline or loop.time() + window
                await conn.wait_ready(reconnect_deadline)
            return await _apublish_once(envelope, conn, timeout)
        except BrokerUnavailable as exc:
            return exc  # reconnecting took the whole window already
        except aio_publish.TRANSIENT as exc:
            reconnect_deadline = reconnect_deadline or loop.time() + window
            if loop.time() >= reconnect_deadline:
                return connections.unavailable(conn.settings, exc)
            logger.debug("Publish of %s interrupted (%r); retrying", envelope.message_id, exc)
            await asyncio.sleep(next(delays))


async def _apublish_once(
    envelope: Envelope, conn: connections.AsyncConnection, timeout: float | None
) -> Outcome:
    try:
        return await aio_publish.publish_once(envelope, conn, timeout)
    except TimeoutError:
        return _stalled(envelope, conn)


__all__ = [
    "BrokerBlocked",
    "Interceptor",
    "Message",
    "PublishResult",
    "apublish",
    "apublish_many",
    "publish",
    "publish_envelopes",
    "publish_many",
]
