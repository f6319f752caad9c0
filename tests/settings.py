"""Test settings: the demo shop's, pointed at this run's own RabbitMQ vhost."""

import os
import tempfile
import uuid
from pathlib import Path

from demo_shop.settings import *  # noqa: F403
from tests.broker import AMQP_PORT

# One vhost per test run, created and deleted by tests/conftest.py.
TEST_VHOST = os.environ.setdefault("RABBITBUS_TEST_VHOST", f"rabbitbus-test-{uuid.uuid4().hex[:8]}")
TEST_URL = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{TEST_VHOST}"

RABBITBUS = {
    "CONNECTIONS": {
        "default": {"URL": TEST_URL, "CONNECTION_NAME": "rabbitbus-tests", "RECONNECT_TIMEOUT": 5},
    },
    "APP_ID": "rabbitbus-tests",
    # CI runs the publishing, worker and RPC modules again with the fast paths off
    # (scripts/test.sh): RABBITBUS_TEST_FAST_PATHS=off.
    "FAST_PATHS": os.environ.get("RABBITBUS_TEST_FAST_PATHS", "on") != "off",
    # The demo shop's apps are installed: their bridges publish to its exchange.
    "EXCHANGES": RABBITBUS["EXCHANGES"],  # noqa: F405
}

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# No collectstatic before a test run: WhiteNoise serves the apps' files through the finders
# (as under DEBUG), from an empty STATIC_ROOT instead of one that would not exist on a clean clone.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = Path(tempfile.gettempdir()) / f"rabbitbus-test-static-{TEST_VHOST}"
STATIC_ROOT.mkdir(exist_ok=True)
