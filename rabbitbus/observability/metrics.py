"""Prometheus metrics: off unless configured, and then cheap.

``RABBITBUS["METRICS"]`` (a dict) turns them on in every process that loads the
app; ``--metrics-port`` on ``rabbit_consume``, ``rabbit_rpc``, ``rabbit_tasks`` and
``rabbit_outbox`` turns them on for that process and serves ``/metrics`` on the port (as
does ``METRICS["PORT"]``). Web processes route :func:`rabbitbus.observability.views.metrics`.

The hot paths call the hooks below only behind ``if metrics.on:``: with metrics
off, each hook point costs one attribute check. ``prometheus_client`` is imported
only when metrics are turned on; without it, turning them on raises
:class:`~rabbitbus.exceptions.ConfigurationError` (and check ``E083`` says so).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from rabbitbus.exceptions import ConfigurationError, Reject

logger = logging.getLogger("rabbitbus.observability.metrics")

#: True once metrics are turned on in this process: every hook point checks this first.
on = False

#: The instruments module (rabbitbus.observability.instruments) once turned on.
instruments: Any = None

#: Seconds between two counts of the outbox backlog by one relay.
BACKLOG_EVERY = 5.0

#: rabbitbus.consuming.dispatch's actions (not imported: that module pulls in Django's ORM).
ACK, RETRY, DATABASE_DOWN = "ack", "retry", "database-down"

_connected_once: set[str] = set()
_backlog_at: dict[str, float] = {}


@functools.cache
def child(metric: str, *labels: str) -> Any:
    """The child of instrument ``metric`` for ``labels``, looked up once (label values
    are bounded, so is this cache)."""
    return getattr(instruments, metric).labels(*labels)


def available() -> bool:
    """Whether ``prometheus_client`` can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def enable() -> None:
    """Turn metrics on in this process; raises :class:`ConfigurationError` without
    ``prometheus_client``."""
    global on, instruments
    try:
        from rabbitbus.observability import instruments as loaded
    except ImportError as exc:
        raise ConfigurationError(
            "Metrics need prometheus_client: pip install 'rabbitbus[metrics]'."
        ) from exc
    instruments = loaded
    on = True
    _count_tasks()


def disable() -> None:
    """Turn the hooks off (the instruments keep their values)."""
    global on
    on = False


def configure() -> None:
    """Turn metrics on or off as ``RABBITBUS["METRICS"]`` says (the app's ``ready()``).

    No I/O, no port: only the worker commands serve one. Without
    ``prometheus_client`` metrics stay off (check ``E083`` reports it).
    """
    from rabbitbus.conf import settings

    if settings.METRICS is None or not available():
        disable()
    else:
        enable()


def registry() -> Any:
    """The registry to expose: every process's values under ``PROMETHEUS_MULTIPROC_DIR``
    (prometheus_client's multiprocess mode), else this process's."""
    import prometheus_client
    from prometheus_client import multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.REGISTRY
    collected = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def serve(port: int | None) -> str | None:
    """Turn metrics on and serve ``/metrics`` on ``port`` (else ``METRICS["PORT"]``) in a
    daemon thread; returns the URL served, or None when no port is configured."""
    from rabbitbus.conf import settings

    options = settings.metrics
    port = port if port is not None else options.port
    if port is None:
        return None
    enable()
    import prometheus_client

    addr = options.addr
    try:
        prometheus_client.start_http_server(port, addr, registry=registry())
    except OSError as exc:
        raise ConfigurationError(f"Cannot serve metrics on {addr}:{port}: {exc}") from exc
    logger.info("Serving Prometheus metrics on %s:%s", addr, port)
    return f"http://{addr}:{port}/metrics"


def banner(port: int | None) -> list[str]:
    """Serve metrics as :func:`serve` does; the banner's line saying where, if anywhere."""
    url = serve(port)
    return [f"metrics on {url}"] if url else []


def add_metrics_argument(parser: Any) -> None:
    """``--metrics-port`` for a long-running command."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help='Serve Prometheus metrics on this port (default: RABBITBUS["METRICS"]["PORT"]).',
    )


# -- publishing --------------------------------------------------------------


def publish_outcome(error: BaseException | None) -> str:
    """A bounded word for a publish outcome."""
    from rabbitbus import exceptions as ex

    if error is None:
        return "confirmed"
    for kind, word in (
        (ex.Unroutable, "unroutable"),
        (ex.ExchangeNotFound, "exchange_not_found"),
        (ex.NotConfirmed, "nacked"),
        (ex.PublishTimeout, "timeout"),
        (ex.BrokerBlocked, "blocked"),
        (ex.BrokerUnavailable, "unavailable"),
    ):
        if isinstance(error, kind):
            return word
    return "failed"


def count_published(envelopes: Sequence[Any], outcomes: dict[str, Any], started: float) -> None:
    elapsed = time.perf_counter() - started
    for envelope in envelopes:
        error = outcomes.get(envelope.message_id)
        exchange = envelope.exchange or "amq.default"
        child("published_messages", exchange, publish_outcome(error)).inc()
        if error is None:
            instruments.publish_confirm_seconds.observe(elapsed)


class SendFunction(Protocol):
    """The shape of the sync publish path that :func:`observe_send` wraps."""

    def __call__(
        self, envelopes: Sequence[Any], alias: str, timeout: float | None, meanwhile: Any = None
    ) -> dict[str, Any]: ...


AsendFunction = Callable[[Any, Any, "float | None"], Awaitable[Any]]


def observe_send(send: SendFunction) -> SendFunction:
    """Count the outcomes of a sync publish path; with metrics off, a plain call."""

    @functools.wraps(send)
    def observed(
        envelopes: Sequence[Any], alias: str, timeout: float | None, meanwhile: Any = None
    ) -> dict[str, Any]:
        if not on:
            return send(envelopes, alias, timeout, meanwhile)
        started = time.perf_counter()
        outcomes = send(envelopes, alias, timeout, meanwhile)
        count_published(envelopes, outcomes, started)
        return outcomes

    return observed


def observe_asend(asend: AsendFunction) -> AsendFunction:
    """Count the outcome of an async publish; with metrics off, the same coroutine."""

    async def counted(envelope: Any, conn: Any, timeout: float | None) -> Any:
        started = time.perf_counter()
        outcome = await asend(envelope, conn, timeout)
        count_published([envelope], {envelope.message_id: outcome}, started)
        return outcome

    @functools.wraps(asend)
    def observed(envelope: Any, conn: Any, timeout: float | None) -> Awaitable[Any]:
        return counted(envelope, conn, timeout) if on else asend(envelope, conn, timeout)

    return observed


# -- consuming -----------------------------------------------------------------


def consumed(spec: Any, outcome: Any, settled: bool, started: float) -> None:
    """One delivery handled by ``spec``: its outcome and the handler's time.

    ``outcome`` is a :class:`rabbitbus.consuming.dispatch.Outcome`; ``settled`` is False when
    the delivery went back to its queue (its copy could not be parked, or a
    database outage held it).
    """
    action = outcome.action
    if not settled:
        word = "requeued"
    elif action == ACK:
        word = "duplicate" if outcome.duplicate else "acked"
    elif action == RETRY:
        word = "retried"
    else:
        word = "rejected" if isinstance(outcome.error, Reject) else "dead_lettered"
    child("consumed_messages", spec.queue, spec.name, word).inc()
    if action != DATABASE_DOWN:
        child("handler_seconds", spec.name).observe(time.perf_counter() - started)


# -- RPC -----------------------------------------------------------------------


def call_outcome(error: BaseException | None) -> str:
    """A bounded word for the outcome of an RPC call, as the caller saw it."""
    from rabbitbus import exceptions as ex

    if error is None:
        return "ok"
    for kind, word in (
        (ex.NoServer, "no_server"),
        (ex.RpcTimeout, "timeout"),
        (ex.NoRoute, "no_route"),
        (ex.RpcNotSent, "not_sent"),
        (ex.BrokerConnectionError, "connection_lost"),
        (ex.RemoteError, "error"),
        (ex.RabbitBusError, "failed"),
    ):
        if isinstance(error, kind):
            return word
    return "error"  # a registered exception type, rebuilt from the reply


def rpc_call(procedure: str, call: Callable[[], Any]) -> Any:
    """Run a sync RPC ``call`` and count it."""
    started = time.perf_counter()
    try:
        result = call()
    except BaseException as exc:
        _count_call(procedure, exc, started)
        raise
    _count_call(procedure, None, started)
    return result


async def arpc_call(procedure: str, call: Awaitable[Any]) -> Any:
    """Await an async RPC ``call`` and count it."""
    started = time.perf_counter()
    try:
        result = await call
    except BaseException as exc:
        _count_call(procedure, exc, started)
        raise
    _count_call(procedure, None, started)
    return result


def _count_call(procedure: str, error: BaseException | None, started: float) -> None:
    child("rpc_calls", procedure, call_outcome(error)).inc()
    child("rpc_call_seconds", procedure).observe(time.perf_counter() - started)


def rpc_request(procedure: str, outcome: str, started: float | None = None) -> None:
    """One request served: ``outcome`` is ok, error, rejected or expired; ``started``
    (``time.perf_counter()``) when the procedure ran."""
    child("rpc_requests", procedure, outcome).inc()
    if started is not None:
        child("rpc_request_seconds", procedure).observe(time.perf_counter() - started)


# -- the outbox relay and connections --------------------------------------------


def relayed(count: int) -> None:
    instruments.outbox_relayed.inc(count)


def outbox_backlog(using: str, *, force: bool = False) -> None:
    """Count the pending outbox rows of database ``using``, at most every ``BACKLOG_EVERY``."""
    now = time.monotonic()
    if not force and now - _backlog_at.get(using, -BACKLOG_EVERY) < BACKLOG_EVERY:
        return
    _backlog_at[using] = now
    from django.db.models import Count, Min
    from django.utils import timezone

    from rabbitbus.models import OutboxMessage

    pending = OutboxMessage.objects.using(using).filter(status=OutboxMessage.Status.PENDING)
    figures = pending.aggregate(count=Count("id"), oldest=Min("created_at"))
    oldest = figures["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest is not None else 0.0
    instruments.outbox_pending.set(figures["count"])
    instruments.outbox_oldest_pending_seconds.set(max(0.0, age))


def connection_changed(alias: str, node: str, up: bool) -> None:
    """A worker's or RPC server's connection to ``node`` (``host:port``, one of the
    configured URLs: bounded) came up (a reconnect after the first) or went."""
    instruments.connection_up.labels(alias, node).set(1 if up else 0)
    if up:
        if alias in _connected_once:
            instruments.reconnects.labels(alias).inc()
        _connected_once.add(alias)


# -- django.tasks --------------------------------------------------------------------


def _count_tasks() -> None:
    """Count the tasks of every ``django.tasks`` backend through Django's own signals
    (connected once; nothing without ``django.tasks`` or its backport)."""
    try:
        from rabbitbus.tasks.compat import task_enqueued, task_finished
    except ImportError:
        return
    task_enqueued.connect(_task_enqueued, dispatch_uid="rabbitbus.metrics.enqueued")
    task_finished.connect(_task_finished, dispatch_uid="rabbitbus.metrics.finished")


def _task_enqueued(*, task_result: Any, **kwargs: Any) -> None:
    if on:
        task = task_result.task
        child("tasks_enqueued", task_result.backend, task.queue_name, task.module_path).inc()


def _task_finished(*, task_result: Any, **kwargs: Any) -> None:
    if not on:
        return
    task = task_result.task
    status = str(task_result.status.value).lower()
    child("tasks_finished", task_result.backend, task.queue_name, task.module_path, status).inc()
    started, finished = task_result.started_at, task_result.finished_at
    if started is not None and finished is not None:
        seconds = max(0.0, (finished - started).total_seconds())
        child("task_seconds", task.module_path).observe(seconds)


def _reconfigure_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "RABBITBUS":
        configure()


def connect_settings_signal() -> None:
    """Follow ``override_settings(RABBITBUS=...)`` (called by the app's ``ready()``)."""
    from django.core.signals import setting_changed

    setting_changed.connect(_reconfigure_on_change, dispatch_uid="rabbitbus.metrics")
