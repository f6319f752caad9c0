"""The outbox relay: claim rows, publish them with confirms, mark them sent.

:class:`Relay` is synchronous (pika through
:func:`rabbitbus.publishing.publish_envelopes`) and owns nothing global, so it
can run in ``manage.py rabbit_outbox`` or in a thread of another process
(e.g. beside the consumer worker): call :meth:`Relay.run` with a
``threading.Event`` to stop it, or :meth:`Relay.run_once` from your own loop.

Each batch: one short transaction claims rows (``SKIP LOCKED`` on
PostgreSQL), the publish happens outside any transaction, and a second
transaction marks confirmed rows sent. A relay killed in between leaves its
rows claimed; they are claimed again after ``CLAIM_TIMEOUT`` and published a
second time (at-least-once; consumers deduplicate by message id).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction

from rabbitbus import publishing
from rabbitbus.conf import OutboxSettings
from rabbitbus.exceptions import (
    AccessRefused,
    BrokerConnectionError,
    ExchangeNotFound,
    PublishTimeout,
)
from rabbitbus.models import OutboxMessage
from rabbitbus.observability import metrics, traces
from rabbitbus.outbox import table
from rabbitbus.runtime.console import Observer
from rabbitbus.transport import connections as rabbit_connections

logger = logging.getLogger("rabbitbus.outbox.relay")

#: Called with each batch's result after the publish and before the rows are marked sent.
BeforeMark = Callable[[publishing.PublishResult], None]

#: Publish outcomes that say nothing about the row: leave it pending.
TRANSIENT = (BrokerConnectionError, PublishTimeout)

PRUNE_EVERY = 300.0
#: Longest a waiting relay takes to notice its stop event.
STOP_CHECK = 0.5


class Relay:
    """Moves outbox rows of database ``using`` to RabbitMQ. Not thread-safe: one per thread.

    ``options`` override ``RABBITBUS['OUTBOX']`` keys for this relay. ``before_mark``, if
    given, is called with each batch's :class:`~rabbitbus.publishing.PublishResult` between
    the publish and the transaction that marks the rows sent: the window in which a relay
    that dies publishes its batch a second time (the fault tests stop a relay there).
    """

    def __init__(
        self,
        *,
        using: str = "default",
        relay_id: str | None = None,
        options: dict[str, Any] | None = None,
        before_mark: BeforeMark | None = None,
    ) -> None:
        self.using = using
        self.relay_id = relay_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.options = table.options().overridden(options or {})
        self.published = 0
        self.failed = 0
        #: Told of each row published or failed for good (``rabbit_outbox -v 2``).
        self.observer: Observer | None = None
        self.before_mark = before_mark
        self._last_prune = 0.0
        #: The failure of the previous iteration, as "Type: message" (its traceback was logged).
        self._failing: str | None = None

    def run_once(self) -> int:
        """Claim, publish and settle one batch; returns how many rows it claimed.

        Raises :class:`BrokerUnavailable` (rows released) when no broker answers.
        """
        opts = self.options
        rows = table.claim(self.relay_id, opts.batch_size, opts.claim_timeout, self.using)
        by_connection: dict[str, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_connection[row.connection].append(row)
        try:
            for alias, group in by_connection.items():
                self._publish(alias, group)
        except BrokerConnectionError:
            # Give back every row not settled yet, not only the failed connection's.
            table.release([row.id for row in rows], self.relay_id, self.using)
            raise
        return len(rows)

    def _publish(self, alias: str, rows: list[OutboxMessage]) -> None:
        envelopes = [table.envelope_of(row) for row in rows]
        spans = traces.relay_spans(envelopes) if traces.on else []
        try:
            result = publishing.publish_envelopes(envelopes, connection=alias)
        except BaseException as exc:
            traces.end_relay_spans(
                spans, envelopes, {envelope.message_id: exc for envelope in envelopes}
            )
            raise
        traces.end_relay_spans(spans, envelopes, result.failed)
        if self.before_mark is not None:
            self.before_mark(result)
        self._settle(rows, result)

    def _settle(self, rows: list[OutboxMessage], result: publishing.PublishResult) -> None:
        confirmed = set(result.confirmed)
        with transaction.atomic(using=self.using):
            table.mark_sent([row.id for row in rows if row.message_id in confirmed], self.using)
            transient = []
            for row in rows:
                error = result.failed.get(row.message_id)
                if isinstance(error, TRANSIENT) or _bystander(row, error):
                    transient.append(row.id)
                elif error is not None:
                    self._record_failure(row, error)
            table.release(transient, self.relay_id, self.using)
        self.published += len(confirmed)
        if metrics.on:
            metrics.relayed(len(confirmed))
        if self.observer is not None:  # no per-row work on the hot path unless asked
            for row in rows:
                if row.message_id in confirmed:
                    self._tell(f"published to {row.exchange or '(default)'}:{row.routing_key}", row)

    def _tell(self, outcome: str, row: OutboxMessage) -> None:
        if self.observer is not None:
            self.observer("relay", outcome, row.message_id)

    def _record_failure(self, row: OutboxMessage, error: BaseException) -> None:
        if table.record_failure(row, error, self.relay_id, self.using, self.options):
            self.failed += 1
            self._tell(f"failed for good ({type(error).__name__})", row)
            logger.error(
                "Outbox message %s failed for good after %d attempts: %s",
                row.message_id,
                row.attempts + 1,
                type(error).__name__,
            )
        else:
            logger.warning(
                "Outbox message %s not published (%s); will retry", row.message_id, error
            )

    def prune_if_due(self) -> None:
        """Delete old sent rows at most every five minutes."""
        if time.monotonic() - self._last_prune >= PRUNE_EVERY:
            self._last_prune = time.monotonic()
            deleted = table.prune(self.options.retention, self.using)
            if deleted:
                logger.info("Pruned %d sent outbox messages", deleted)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; survives broker and database outages."""
        waiter = make_waiter(self.using, self.options)
        delay = self.options.poll_interval
        try:
            while not stop.is_set():
                claimed = self._step()
                if claimed is None:  # broker or database down: back off
                    delay = min(self.options.idle_interval * 5, max(delay * 2, 0.5))
                    stop.wait(delay)
                elif claimed < self.options.batch_size:
                    delay = waiter.wait(claimed > 0, stop)
        finally:
            waiter.close()
            rabbit_connections.close_all()
            connections[self.using].close()

    def _step(self) -> int | None:
        try:
            claimed = self.run_once()
            self.prune_if_due()
            if metrics.on:
                metrics.outbox_backlog(self.using)
        except AccessRefused as exc:
            logger.error("Relay refused by the broker (%s); retrying", exc)  # a setting to fix
        except BrokerConnectionError as exc:
            # rabbitbus.transport.outage logged the loss, once: this is one line per backoff step.
            logger.info("Relay cannot reach the broker (%s); retrying", type(exc).__name__)
        except Exception as exc:
            self._failed(exc)
            connections[self.using].close()
        else:
            if self._failing is not None:
                logger.info("Relay recovered (after %s)", self._failing)
                self._failing = None
            return claimed
        return None

    def _failed(self, exc: Exception) -> None:
        """A traceback for a new failure; one line while the same one goes on (a database down)."""
        failure = f"{type(exc).__name__}: {exc}"
        if failure == self._failing:
            logger.warning("Relay iteration failed again (%s); retrying", failure)
        else:
            logger.exception("Relay iteration failed; retrying")
            self._failing = failure


def _bystander(row: OutboxMessage, error: BaseException | None) -> bool:
    """A 404 closes the whole channel: only the row naming the missing exchange is at fault.

    The others in the batch are sent again with the next one (at-least-once).
    """
    return isinstance(error, ExchangeNotFound) and f"'{row.exchange}'" not in str(error)


class PollWaiter:
    """Adaptive polling: short sleeps while busy, doubling up to IDLE_INTERVAL when idle.

    Writers in this process cut the wait short through :data:`table.local_wakeup`.
    """

    def __init__(self, options: OutboxSettings) -> None:
        self.busy, self.idle = options.poll_interval, options.idle_interval
        self.delay = self.busy

    def wait(self, busy: bool, stop: threading.Event) -> float:
        self.delay = self.busy if busy else min(self.idle, self.delay * 2)
        deadline = time.monotonic() + self.delay
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if table.local_wakeup.wait(min(left, STOP_CHECK)):
                table.local_wakeup.clear()
                self.delay = self.busy
                break
        return self.delay

    def close(self) -> None:
        pass


class NotifyWaiter:
    """PostgreSQL ``LISTEN``: wakes as soon as a writer commits; polls every IDLE_INTERVAL."""

    def __init__(self, using: str, options: OutboxSettings) -> None:
        import psycopg

        params = connections[using].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        self.idle = options.idle_interval
        self.connection = psycopg.connect(**params, autocommit=True)
        self.connection.execute(f"LISTEN {table.NOTIFY_CHANNEL}")

    def wait(self, busy: bool, stop: threading.Event) -> float:
        deadline = time.monotonic() + self.idle
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if list(self.connection.notifies(timeout=min(left, STOP_CHECK), stop_after=1)):
                break
        return self.idle

    def close(self) -> None:
        self.connection.close()


def make_waiter(using: str, options: OutboxSettings) -> PollWaiter | NotifyWaiter:
    if connections[using].vendor == "postgresql":
        try:
            return NotifyWaiter(using, options)
        except Exception as exc:  # noqa: BLE001 - fall back to polling, never die here
            logger.warning("LISTEN unavailable (%s); polling the outbox", type(exc).__name__)
    return PollWaiter(options)
