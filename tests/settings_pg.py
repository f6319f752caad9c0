"""Test settings on PostgreSQL (127.0.0.1:5432, user postgres) for the ``postgres`` tests.

Run with ``pytest --ds=tests.settings_pg -m postgres``. pytest-django creates
and drops ``test_<name>``; subprocesses (relays) use ``tests.settings_pg_child``,
which points at that test database directly.
"""

import os
import uuid

from tests.settings import *  # noqa: F403

PG_NAME = os.environ.setdefault("RABBITBUS_TEST_PGDB", f"rabbitbus_{uuid.uuid4().hex[:8]}")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": PG_NAME,
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "TEST": {"NAME": f"test_{PG_NAME}"},
    }
}
