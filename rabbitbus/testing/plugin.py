"""The pytest plugin: fixtures ``rabbit_published`` and ``rabbit_memory``.

Loaded through the ``pytest11`` entry point once rabbitbus is installed as a
package; otherwise with ``-p rabbitbus.testing.plugin`` (or
``pytest_plugins = ["rabbitbus.testing.plugin"]`` in a root ``conftest.py``).
Imports nothing of rabbitbus until a fixture runs: pytest loads plugins before
pytest-django configures Django.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rabbitbus.testing import Capture, InMemoryBroker

MARKER = "rabbit_memory"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the test's rabbit_memory broker "
        "(consumers=, topology=, max_depth=, relay_outbox=).",
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
