"""Settings for the live server of the browser test: the test settings on a file database."""

import json
import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RABBITBUS_BROWSER_DB"]}
}
RABBITBUS = {**RABBITBUS, "QUEUES": json.loads(os.environ.get("RABBITBUS_BROWSER_QUEUES", "{}"))}  # noqa: F405
DEBUG = True
