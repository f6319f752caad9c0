"""Settings of the metrics tests' web processes: tests.settings with metrics on."""

from tests.settings import *  # noqa: F403

RABBITBUS = {**RABBITBUS, "METRICS": {}}  # noqa: F405
ROOT_URLCONF = "tests.metrics_urls"
