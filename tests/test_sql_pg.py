"""The rabbitbus.sql tests on PostgreSQL (``pytest --ds=tests.settings_pg -m postgres``)."""

from __future__ import annotations

import pytest

from tests.test_sql import (  # noqa: F401 - collected here too, on PostgreSQL
    statement_path,
    test_new_rows_are_written_with_every_field,
    test_rows_whose_key_exists_are_skipped_not_overwritten,
    test_the_statement_names_every_column_once_per_row,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
