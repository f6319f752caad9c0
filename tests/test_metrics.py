"""rabbitbus.observability.metrics in this process: counts per outcome, checks, the view."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import rabbitbus
from rabbitbus import exceptions as ex
from rabbitbus import outbox, rpc
from rabbitbus.observability import metrics
from rabbitbus.observability.checks import metrics_errors
from rabbitbus.outbox.relay import Relay
from rabbitbus.transport import connections
from tests.rpc_support import serving
from tests.workers import ROOT

PUBLISHED = "rabbitbus_published_messages_total"
CONFIRM_COUNT = "rabbitbus_publish_confirm_seconds_count"


def value(name: str, **labels: str) -> float:
    """A sample of this process's default registry (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics_on() -> Iterator[None]:
    with override_settings(RABBITBUS={**django_settings.RABBITBUS, "METRICS": {}}):
        assert metrics.on
        yield
    assert not metrics.on


def test_metrics_are_off_unless_configured() -> None:
    assert not metrics.on


def test_a_sync_publish_counts_its_outcome_and_confirm_time(
    metrics_on: None, exchange: str, queue: str
) -> None:
    before = value(PUBLISHED, exchange=exchange, outcome="confirmed"), value(CONFIRM_COUNT)
    rabbitbus.publish(exchange, "a.b", {"n": 1})
    rabbitbus.publish_many([rabbitbus.Message(exchange, "a.c", {"n": n}) for n in range(3)])
    after = value(PUBLISHED, exchange=exchange, outcome="confirmed"), value(CONFIRM_COUNT)
    assert (after[0] - before[0], after[1] - before[1]) == (4, 4)


def test_an_unroutable_publish_counts_as_unroutable_without_a_confirm_time(
    metrics_on: None, exchange: str
) -> None:
    before = value(PUBLISHED, exchange=exchange, outcome="unroutable"), value(CONFIRM_COUNT)
    with pytest.raises(ex.Unroutable):
        rabbitbus.publish(exchange, "nobody.listens", {})
    after = value(PUBLISHED, exchange=exchange, outcome="unroutable"), value(CONFIRM_COUNT)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


async def test_an_async_publish_counts_each_outcome(
    metrics_on: None, exchange: str, queue: str
) -> None:
    confirmed = value(PUBLISHED, exchange=exchange, outcome="confirmed")
    try:
        await rabbitbus.apublish(exchange, "a.b", {})
        await rabbitbus.apublish_many([rabbitbus.Message(exchange, "a.b", {})] * 2)
    finally:
        await connections.aclose_all()
    assert value(PUBLISHED, exchange=exchange, outcome="confirmed") - confirmed == 3


def test_with_metrics_off_nothing_is_counted(exchange: str, queue: str) -> None:
    before = value(PUBLISHED, exchange=exchange, outcome="confirmed")
    rabbitbus.publish(exchange, "a.b", {})
    assert value(PUBLISHED, exchange=exchange, outcome="confirmed") == before


def test_the_default_exchange_is_labelled_amq_default(metrics_on: None, queue: str) -> None:
    before = value(PUBLISHED, exchange="amq.default", outcome="confirmed")
    rabbitbus.publish("", queue, {})
    assert value(PUBLISHED, exchange="amq.default", outcome="confirmed") - before == 1


def test_rpc_calls_and_requests_are_counted_per_procedure_and_outcome(metrics_on: None) -> None:
    calls = "rabbitbus_rpc_calls_total"
    requests = "rabbitbus_rpc_requests_total"
    keys = [
        (calls, "test.echo", "ok"),
        (calls, "test.fail", "error"),
        (requests, "test.echo", "ok"),
        (requests, "test.fail", "error"),
        ("rabbitbus_rpc_call_seconds_count", "test.echo", ""),
        ("rabbitbus_rpc_request_seconds_count", "test.fail", ""),
    ]

    def snapshot() -> list[float]:
        return [value(name, procedure=p, **({"outcome": o} if o else {})) for name, p, o in keys]

    before = snapshot()
    with serving("test.echo", "test.fail"):
        for n in range(3):
            assert rpc.call("test.echo", n, timeout=10) == {"args": [n], "kwargs": {}}
        for _ in range(2):
            with pytest.raises(rpc.RemoteError):
                rpc.call("test.fail", "no", timeout=10)
    deltas = [a - b for a, b in zip(snapshot(), before, strict=True)]
    assert deltas == [3, 2, 3, 2, 3, 2]


async def test_async_rpc_calls_are_counted(metrics_on: None) -> None:
    name = "rabbitbus_rpc_calls_total"
    before = value(name, procedure="test.nobody", outcome="no_route")
    try:
        with pytest.raises(rpc.NoRoute):
            await rpc.acall("test.nobody", timeout=5)
    finally:
        await connections.aclose_all()
    assert value(name, procedure="test.nobody", outcome="no_route") - before == 1


@pytest.mark.django_db(transaction=True)
def test_the_relay_counts_rows_relayed_and_the_backlog(
    metrics_on: None, exchange: str, queue: str
) -> None:
    relayed = value("rabbitbus_outbox_relayed_total")
    for n in range(3):
        outbox.enqueue(exchange, "a.b", {"n": n})
    metrics.outbox_backlog("default", force=True)
    assert value("rabbitbus_outbox_pending") == 3
    assert value("rabbitbus_outbox_oldest_pending_seconds") >= 0
    assert Relay().run_once() == 3
    metrics.outbox_backlog("default", force=True)
    assert value("rabbitbus_outbox_pending") == 0
    assert value("rabbitbus_outbox_oldest_pending_seconds") == 0
    assert value("rabbitbus_outbox_relayed_total") - relayed == 3


def test_connection_up_and_reconnects_follow_the_runtime(metrics_on: None) -> None:
    before = value("rabbitbus_reconnects_total", alias="metrics-test")
    first, second = (
        {"alias": "metrics-test", "node": "a:5672"},
        {"alias": "metrics-test", "node": "b:5672"},
    )
    metrics.connection_changed("metrics-test", "a:5672", up=True)
    assert value("rabbitbus_connection_up", **first) == 1
    metrics.connection_changed("metrics-test", "a:5672", up=False)
    assert value("rabbitbus_connection_up", **first) == 0
    metrics.connection_changed("metrics-test", "b:5672", up=True)
    assert value("rabbitbus_reconnects_total", alias="metrics-test") - before == 1
    assert (
        value("rabbitbus_connection_up", **first),
        value("rabbitbus_connection_up", **second),
    ) == (0, 1)


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (None, "confirmed"),
        (ex.Unroutable("x"), "unroutable"),
        (ex.ExchangeNotFound("x"), "exchange_not_found"),
        (ex.NotConfirmed("x"), "nacked"),
        (ex.PublishTimeout("x"), "timeout"),
        (ex.BrokerBlocked("x"), "blocked"),
        (ex.BrokerUnavailable("x"), "unavailable"),
        (ex.PublishError("x"), "failed"),
    ],
)
def test_publish_outcome_words(error: BaseException | None, word: str) -> None:
    assert metrics.publish_outcome(error) == word


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (None, "ok"),
        (ex.NoServer("x"), "no_server"),
        (ex.RpcTimeout("x"), "timeout"),
        (ex.NoRoute("x"), "no_route"),
        (ex.RpcNotSent("x"), "not_sent"),
        (ex.BrokerConnectionError("x"), "connection_lost"),
        (ex.RemoteError("T", "m", "c"), "error"),
        (ex.RpcError("x"), "failed"),
        (KeyError("registered and rebuilt"), "error"),
    ],
)
def test_call_outcome_words(error: BaseException | None, word: str) -> None:
    assert metrics.call_outcome(error) == word


def ids(raw: Any) -> list[str]:
    return [message.id for message in metrics_errors(raw)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ({}, []),
        ({"PORT": 9100, "ADDR": "127.0.0.1"}, []),
        ("9100", ["rabbitbus.E080"]),
        ({"PROT": 9100}, ["rabbitbus.E081"]),
        ({"PORT": 70000}, ["rabbitbus.E082"]),
        ({"PORT": True}, ["rabbitbus.E082"]),
        ({"PORT": "9100"}, ["rabbitbus.E082"]),
        ({"ADDR": 127}, ["rabbitbus.E082"]),
    ],
)
def test_metrics_settings_checks(raw: Any, expected: list[str]) -> None:
    assert ids(raw) == expected


def test_metrics_set_without_prometheus_client_is_E083(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "available", lambda: False)
    assert ids({"PORT": 9100}) == ["rabbitbus.E083"]
    assert ids(None) == []


def test_the_view_is_404_while_metrics_are_off() -> None:
    with override_settings(ROOT_URLCONF="tests.metrics_urls"):
        assert Client().get("/metrics").status_code == 404


def test_the_view_serves_the_text_format(metrics_on: None, exchange: str, queue: str) -> None:
    rabbitbus.publish(exchange, "a.b", {})
    with override_settings(ROOT_URLCONF="tests.metrics_urls"):
        response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {"rabbitbus_published_messages", "rabbitbus_publish_confirm_seconds"} <= families


def test_rabbitbus_works_without_prometheus_client_or_opentelemetry() -> None:
    """A process where ``import prometheus_client`` and ``opentelemetry`` fail: the app
    loads, publishes, keeps metrics off although configured and says why (E083), and
    traces nothing."""
    script = """
import sys
sys.modules["prometheus_client"] = None  # import fails, as when it is not installed
sys.modules["opentelemetry"] = None
import django
from django.conf import settings
django.setup()
from django.test.utils import override_settings
from rabbitbus.observability import metrics
from rabbitbus.observability.checks import check_metrics
import rabbitbus
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.observability import traces
assert not traces.on and not traces.active()
with override_settings(RABBITBUS={**settings.RABBITBUS, "METRICS": {"PORT": 9100}}):
    assert not metrics.on
    assert [m.id for m in check_metrics()] == ["rabbitbus.E083"]
    rabbitbus.publish("", "metrics.nowhere", mandatory=False)
    try:
        metrics.enable()
    except ConfigurationError as exc:
        print("refused:", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: Metrics need prometheus_client" in result.stdout


def test_the_actions_metrics_compares_are_dispatchs() -> None:
    from rabbitbus.consuming import dispatch

    assert (metrics.ACK, metrics.RETRY, metrics.DATABASE_DOWN) == (
        dispatch.ACK,
        dispatch.RETRY,
        dispatch.DATABASE_DOWN,
    )
