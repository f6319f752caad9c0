"""Group commit on PostgreSQL (``pytest --ds=tests.settings_pg -m postgres``): the worker
subprocess writes to the test database; the same ledgers as on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import test_worker_batch
from tests.broker import Broker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres() -> Path:
    return Path(test_worker_batch.POSTGRES)


@test_worker_batch.HANDLERS
def test_a_poison_message_is_dead_lettered_alone_and_the_rest_applied_once(
    broker: Broker, prefix: str, postgres: Path, workers: list, handler: str
) -> None:
    test_worker_batch.test_a_poison_message_is_dead_lettered_alone_and_the_rest_applied_once(
        broker, prefix, postgres, workers, handler
    )


@test_worker_batch.HANDLERS
def test_sigkill_at_any_point_applies_every_effect_exactly_once(
    broker: Broker, prefix: str, postgres: Path, workers: list, handler: str
) -> None:
    test_worker_batch.test_sigkill_at_any_point_applies_every_effect_exactly_once(
        broker, prefix, postgres, workers, handler
    )
