"""The pytest plugin: fixtures ``rabbit_published``, ``rabbit_memory`` and ``rabbit_broker``.

Loaded through the ``pytest11`` entry point once rabbitbus is installed as a
package; otherwise with ``-p rabbitbus.testing.plugin`` (or
``pytest_plugins = ["rabbitbus.testing.plugin"]`` in a root ``conftest.py``).
Imports nothing of rabbitbus until a fixture runs: pytest loads plugins before
pytest-django configures Django.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rabbitbus.testing import Capture, InMemoryBroker, RabbitBroker

MARKER = "rabbit_memory"
BROKER_MARKER = "rabbit_broker"
#: Set (to anything but "" or "0") to skip, not fail, tests whose broker is unreachable.
SKIP_ENV = "RABBITBUS_TEST_SKIP_UNAVAILABLE"


def pytest_addoption(parser: pytest.Parser) -> None:
    # A plugin loaded from a conftest's pytest_configure misses the parsing: the
    # fixtures read these with defaults, and fall back on the environment variables.
    group = parser.getgroup("rabbitbus")
    group.addoption(
        "--rabbit-broker-url",
        help="AMQP URL of the broker rabbit_broker makes its vhosts on "
        "(default: $RABBITBUS_TEST_BROKER_URL or amqp://guest:guest@127.0.0.1:5672/).",
    )
    group.addoption(
        "--rabbit-skip-unavailable",
        action="store_true",
        help="Skip tests using rabbit_broker when the broker is unreachable (default: error).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the test's rabbit_memory broker "
        "(consumers=, topology=, max_depth=, relay_outbox=).",
    )
    config.addinivalue_line(
        "markers",
        f"{BROKER_MARKER}(own_vhost=False, declare=True, skip_unavailable=False): options of "
        "the test's rabbit_broker (own_vhost: a vhost of its own instead of the session's).",
    )


@pytest.fixture
def rabbit_published() -> Iterator[Capture]:
    """Every publish and RPC request of the test, recorded instead of sent."""
    from rabbitbus.testing import capture_published

    with capture_published() as published:
        yield published


@pytest.fixture
def rabbit_memory(request: pytest.FixtureRequest) -> Iterator[InMemoryBroker]:
    """An in-memory broker for the test; ``@pytest.mark.rabbit_memory(...)`` sets its options."""
    from rabbitbus.testing import InMemoryBroker

    marker = request.node.get_closest_marker(MARKER)
    with InMemoryBroker(**(marker.kwargs if marker else {})) as broker:
        yield broker


class SessionVhost:
    """The session's shared vhost, created on first use (or its creation error, kept)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.broker: RabbitBroker | None = None
        self.error: Exception | None = None

    def get(self) -> RabbitBroker:
        from rabbitbus.testing import RabbitBroker

        if self.error is not None:
            raise self.error
        if self.broker is None:
            broker = RabbitBroker(self.url)
            try:
                broker.create()
            except Exception as exc:
                self.error = exc
                raise
            self.broker = broker
        return self.broker

    def delete(self) -> None:
        if self.broker is not None:
            self.broker.delete()


@pytest.fixture(scope="session")
def rabbit_broker_session(pytestconfig: pytest.Config) -> Iterator[SessionVhost]:
    """The vhost the session's ``rabbit_broker`` tests share; deleted at the end."""
    shared = SessionVhost(pytestconfig.getoption("rabbit_broker_url", None))
    yield shared
    shared.delete()


@pytest.fixture
def rabbit_broker(
    request: pytest.FixtureRequest, rabbit_broker_session: SessionVhost
) -> Iterator[RabbitBroker]:
    """A real broker for the test: rabbitbus's connections point at a throwaway vhost
    (the session's, or the test's own with ``@pytest.mark.rabbit_broker(own_vhost=True)``)
    with the project's topology declared; ``rabbit_broker.worker(...)`` runs consumers
    and RPC procedures in-process until the test ends."""
    from rabbitbus.exceptions import BrokerUnavailable
    from rabbitbus.testing import RabbitBroker

    marker = request.node.get_closest_marker(BROKER_MARKER)
    options = dict(marker.kwargs) if marker else {}
    skip = options.pop("skip_unavailable", False) or _skip_requested(request.config)
    with contextlib.ExitStack() as stack:
        try:
            if options.pop("own_vhost", False):
                url = request.config.getoption("rabbit_broker_url", None)
                broker = stack.enter_context(RabbitBroker(url, **options))
            else:
                shared = rabbit_broker_session.get()
                shared.declare = options.get("declare", True)
                broker = stack.enter_context(shared.activated(purge=True))
        except BrokerUnavailable as exc:
            if skip:
                pytest.skip(f"RabbitMQ unavailable: {exc}")
            raise
        yield broker


def _skip_requested(config: pytest.Config) -> bool:
    from_env = os.environ.get(SKIP_ENV, "0") not in {"", "0"}
    return from_env or bool(config.getoption("rabbit_skip_unavailable", False))
