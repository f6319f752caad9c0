"""Run a registered ``@consumer`` handler as the worker would, without a broker.

:func:`run_consumer` encodes the payload as a publisher would, then hands it
to :func:`rabbitbus.consuming.dispatch.dispatch` (decoding, idempotency, ``Retry`` and
``Reject``, attempts and backoff) and reports what the worker would do as a
:class:`ConsumerOutcome`, with the retry or dead-letter copy the worker would
publish (:func:`rabbitbus.consuming.worker.parked_copy`). ``def`` handlers run in the
caller's thread, so they see a ``TestCase``'s transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from rabbitbus import messages
from rabbitbus.consuming import dispatch, registry, retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.consuming.worker import parked_copy
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.messages import Delivery, Envelope, Message
from rabbitbus.runtime.threads import Threads

T = TypeVar("T")

ACKED, RETRIED, DEAD_LETTERED, DUPLICATE = "acked", "retried", "dead_lettered", "duplicate"
#: The handler failed on an unreachable database: the worker holds the message.
HELD = "held"

_ACTIONS = {dispatch.RETRY: RETRIED, dispatch.DEAD_LETTER: DEAD_LETTERED}


@dataclass(frozen=True)
class ConsumerOutcome:
    """What the worker would do with a delivery.

    ``action`` is ``"acked"``, ``"duplicate"`` (an idempotent consumer had
    already processed that message id; acked without running), ``"retried"``
    (``delay`` seconds later, from ``<queue>.retry.<ms>``), ``"dead_lettered"``
    (``reason`` says why) or ``"held"``. ``copy`` is the retry or dead-letter
    envelope the worker would publish; ``attempt`` counts from 1.
    """

    action: str
    consumer: str
    attempt: int
    error: BaseException | str | None = None
    delay: float | None = None
    copy: Envelope | None = None

    @property
    def acked(self) -> bool:
        return self.action in (ACKED, DUPLICATE)

    @property
    def retried(self) -> bool:
        return self.action == RETRIED

    @property
    def dead_lettered(self) -> bool:
        return self.action == DEAD_LETTERED

    @property
    def duplicate(self) -> bool:
        return self.action == DUPLICATE

    @property
    def reason(self) -> str | None:
        """Why it was retried or dead-lettered: ``"Type: message"``."""
        if self.error is None or isinstance(self.error, str):
            return self.error
        return f"{type(self.error).__name__}: {self.error}"


class InlineThreads(Threads):
    """Runs ``def`` handlers in the caller's thread (and its transaction)."""

    def __init__(self) -> None:
        super().__init__(1, "rabbitbus-testing")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)


def runs_on_loop(spec: ConsumerSpec) -> bool:
    """Whether dispatch awaits ``spec``'s handler on the event loop
    (:attr:`~rabbitbus.consuming.registry.ConsumerSpec.runs_on_loop`)."""
    return spec.runs_on_loop


def spec_for(name_or_handler: str | Callable[..., Any] | ConsumerSpec) -> ConsumerSpec:
    """The registered consumer named so (see :func:`rabbitbus.consuming.registry.find`) or with this
    handler; raises :class:`ConfigurationError` when there is none."""
    if isinstance(name_or_handler, ConsumerSpec):
        return name_or_handler
    if isinstance(name_or_handler, str):
        return registry.find(name_or_handler)
    for spec in registry.consumers.values():
        if spec.handler is name_or_handler:
            return spec
    raise ConfigurationError(f"{name_or_handler!r} is not a registered @consumer handler.")


def delivery(
    spec: ConsumerSpec,
    payload: Any = None,
    headers: dict[str, Any] | None = None,
    *,
    exchange: str | None = None,
    routing_key: str | None = None,
    attempt: int = 1,
    body: bytes | None = None,
    content_type: str | None = None,
    redelivered: bool = False,
    **options: Any,
) -> Delivery:
    """A delivery of ``payload`` to ``spec``'s queue; by default as published to its first
    binding. ``body``/``content_type`` replace the encoded payload (to test bad bodies);
    ``options`` are :class:`~rabbitbus.messages.Message` fields (``message_id``...)."""
    default_exchange, default_key = spec.bindings[0] if spec.bindings else ("", spec.queue)
    headers = dict(headers or {})
    if attempt > 1:
        headers[retries.ATTEMPT] = attempt
    message = Message(
        default_exchange if exchange is None else exchange,
        default_key if routing_key is None else routing_key,
        payload,
        headers=headers,
        **options,
    )
    envelope = messages.build(message)
    return delivery_of(envelope, body, content_type, redelivered)


def delivery_of(
    envelope: Envelope,
    body: bytes | None = None,
    content_type: str | None = None,
    redelivered: bool = False,
) -> Delivery:
    """What a consumer receives for ``envelope``."""
    return Delivery(
        body=envelope.body if body is None else body,
        headers=envelope.headers,
        exchange=envelope.exchange,
        routing_key=envelope.routing_key,
        message_id=envelope.message_id,
        redelivered=redelivered,
        content_type=content_type or envelope.content_type,
        content_encoding=None,
        correlation_id=envelope.correlation_id,
        reply_to=envelope.reply_to,
        type=envelope.type,
        app_id=envelope.app_id,
        timestamp=envelope.timestamp,
    )


async def adispatch(spec: ConsumerSpec, raw: Delivery) -> ConsumerOutcome:
    """Run ``spec``'s handler on ``raw`` as the worker does; the outcome."""
    outcome = await dispatch.dispatch(spec, raw, InlineThreads())
    attempt = retries.attempt_of(raw.headers, spec.attempts)
    if outcome.action == dispatch.ACK:
        action = DUPLICATE if outcome.duplicate else ACKED
        return ConsumerOutcome(action, spec.name, attempt)
    if outcome.action == dispatch.DATABASE_DOWN:
        return ConsumerOutcome(HELD, spec.name, attempt, outcome.error)
    delay = outcome.delay_ms / 1000 if outcome.action == dispatch.RETRY else None
    copy = parked_copy(spec, raw, outcome)
    return ConsumerOutcome(_ACTIONS[outcome.action], spec.name, attempt, outcome.error, delay, copy)


def run_sync(coroutine: Coroutine[Any, Any, T], *, on_loop: bool) -> T:
    """Run ``coroutine`` to its end: on a new event loop when ``on_loop`` (``async def``
    code), else without one (Django refuses database access from a thread running a
    loop; a ``def`` handler's dispatch never waits on one)."""
    if on_loop:
        return asyncio.run(coroutine)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("A def handler's dispatch awaited something outside the handler")


def run_consumer(
    name_or_handler: str | Callable[..., Any] | ConsumerSpec,
    payload: Any = None,
    headers: dict[str, Any] | None = None,
    **options: Any,
) -> ConsumerOutcome:
    """Deliver ``payload`` to a registered consumer as the worker would; the outcome.

    ``options``: ``exchange``, ``routing_key`` (default: its first binding),
    ``attempt`` (which delivery this is, from 1), ``message_id`` (the same id
    twice makes an idempotent consumer report ``"duplicate"``), ``body`` and
    ``content_type`` (raw bytes instead of the payload), ``redelivered``, and
    other :class:`~rabbitbus.messages.Message` fields. Never raises for the
    handler's fault: ``Retry``, ``Reject`` and exceptions become outcomes.
    Use :func:`arun_consumer` from async code.
    """
    spec = spec_for(name_or_handler)
    raw = delivery(spec, payload, headers, **options)
    return run_sync(adispatch(spec, raw), on_loop=runs_on_loop(spec))


async def arun_consumer(
    name_or_handler: str | Callable[..., Any] | ConsumerSpec,
    payload: Any = None,
    headers: dict[str, Any] | None = None,
    **options: Any,
) -> ConsumerOutcome:
    """The async twin of :func:`run_consumer`; a ``def`` handler runs as Django runs sync
    code for async callers (``sync_to_async``), an ``async def`` one on this loop."""
    spec = spec_for(name_or_handler)
    if not runs_on_loop(spec):
        return await sync_to_async(run_consumer)(spec, payload, headers, **options)
    return await adispatch(spec, delivery(spec, payload, headers, **options))
