"""Benchmark settings: the test settings with a real database from BENCH_DATABASE_URL."""

import os

import dj_database_url

from tests.settings import *  # noqa: F403

_url = os.environ.get("BENCH_DATABASE_URL", "")
if _url.startswith("postgres"):
    DATABASES = {"default": dj_database_url.parse(_url)}
    if os.environ.get("BENCH_SYNCHRONOUS_COMMIT") == "off":
        # A commit that does not wait for the disk: on a machine whose fsync is slow this
        # shows what the per-message Python costs beside a fast database's round trips.
        DATABASES["default"]["OPTIONS"] = {"options": "-c synchronous_commit=off"}
elif _url:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _url}}

# Workers keep DB connections between messages, as a deployed worker would
# (close_old_connections() then only drops broken or expired ones).
DATABASES["default"]["CONN_MAX_AGE"] = 60
