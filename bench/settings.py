"""Settings for benchmarks: PostgreSQL database ``rabbitbus_bench``, vhost ``rabbitbus-bench``."""

import os

from demo_shop.settings import *  # noqa: F403

BENCH_VHOST = "rabbitbus-bench"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "rabbitbus_bench",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
}
RABBITBUS = {
    "CONNECTIONS": {"default": {"URL": f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}"}},
    "APP_ID": "rabbitbus-bench",
    # RABBITBUS_BENCH_FAST_PATHS=off measures what the drivers' public API alone costs.
    "FAST_PATHS": os.environ.get("RABBITBUS_BENCH_FAST_PATHS", "on") != "off",
    "EXCHANGES": {"bench": "topic"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
