"""Settings for worker subprocesses: a file SQLite DB both processes can open."""

import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["RABBITBUS_TEST_DB"],
        "OPTIONS": {"timeout": 20},
    }
}

RABBITBUS = {
    **RABBITBUS,  # noqa: F405
    "WORKER": {
        "GRACE_PERIOD": float(os.environ.get("RABBITBUS_TEST_GRACE", "30")),
        "HEARTBEAT_INTERVAL": 0.5,
        "HEARTBEAT_FILE": os.environ.get("RABBITBUS_TEST_HEARTBEAT") or None,
    },
}
