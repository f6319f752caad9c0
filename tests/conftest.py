"""Shared fixtures: this run's vhost, broker control, raw channels, queues."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rabbitbus.transport import connections
from tests import broker as broker_module
from tests.broker import UPSTREAM, Broker, unique
from tests.fault_proxy import FaultProxy
from tests.workers import migrate

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """rabbitbus.testing's fixtures: its pytest11 entry point loads them when rabbitbus is
    installed; the venvs run it from the source tree, so load them here otherwise."""
    if not config.pluginmanager.has_plugin("rabbitbus"):
        config.pluginmanager.import_plugin("rabbitbus.testing.plugin")


@pytest.fixture(scope="session", autouse=True)
def test_vhost() -> Iterator[str]:
    """Create this run's vhost before any test and delete it after the last."""
    vhost = os.environ["RABBITBUS_TEST_VHOST"]
    broker_module.add_vhost(vhost)
    yield vhost
    connections.close_all()
    broker_module.delete_vhost(vhost)


@pytest.fixture
def broker(test_vhost: str) -> Broker:
    return Broker(test_vhost)


@pytest.fixture(autouse=True)
def fresh_connections() -> Iterator[None]:
    """Each test starts with no open rabbitbus connection in this thread."""
    connections.forget_all()
    yield
    connections.close_all()


@pytest.fixture
def exchange(broker: Broker) -> Iterator[str]:
    """A topic exchange that exists only for this test."""
    name = unique("test.x")
    with broker.channel() as channel:
        channel.exchange_declare(name, "topic", durable=True)
    yield name
    with broker.channel() as channel:
        channel.exchange_delete(name)


@pytest.fixture
def queue(broker: Broker, exchange: str) -> Iterator[str]:
    """A durable queue bound to ``exchange`` with routing key ``#``."""
    name = unique("test.q")
    with broker.channel() as channel:
        channel.queue_declare(name, durable=True)
        channel.queue_bind(name, exchange, "#")
    yield name
    with broker.channel() as channel:
        channel.queue_delete(name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``postgres`` tests need the PostgreSQL settings; skip them elsewhere."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs --ds=tests.settings_pg")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# -- worker subprocesses (tests.workers) ------------------------------------------


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The spans rabbitbus records, through an SDK provider with an in-memory exporter, for
    this test only (not the global provider: OpenTelemetry lets a process set that once,
    and the other tests run untraced). Yields the ``InMemorySpanExporter``."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rabbitbus.observability import traces

    memory = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(traces, "provider", sdk)
    yield memory
    sdk.shutdown()


@pytest.fixture
def prefix() -> str:
    """Queue-name prefix of this test's worker subprocesses (their consumers' queues)."""
    return unique("wp")


@pytest.fixture
def db_path(tmp_path: Path, prefix: str) -> Path:
    """A migrated SQLite file the test and its worker subprocesses share."""
    path = tmp_path / "worker.sqlite3"
    migrate(prefix, path)
    return path


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Every worker a test starts; killed at the end if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    """A fault proxy in front of the broker (pass-through until told otherwise)."""
    with FaultProxy(upstream=UPSTREAM) as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def no_stray_database_sessions(django_db_setup: None, django_db_blocker: object) -> Iterator[None]:
    """Before the test database is dropped, end the sessions a finished worker
    subprocess may still hold (PostgreSQL refuses to drop a database in use)."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
