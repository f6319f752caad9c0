"""The inbox tests on PostgreSQL (``pytest --ds=tests.settings_pg -m postgres``)."""

from __future__ import annotations

import pytest

from tests.test_inbox import (  # noqa: F401 - collected here too, on PostgreSQL
    claim_path,
    test_a_message_is_claimed_once_per_consumer,
    test_a_rolled_back_claim_leaves_the_message_unapplied,
    test_an_async_idempotent_handler_writes_in_the_inbox_transaction,
    test_an_idempotent_handler_applies_a_message_once_and_keeps_nothing_it_failed,
    test_many_ids_are_claimed_in_one_statement_and_old_ones_are_told_apart,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
