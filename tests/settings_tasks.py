"""Settings for ``rabbit_tasks`` subprocesses: the worker settings plus a TASKS backend."""

import os

from tests.settings_worker import *  # noqa: F403

TASKS = {
    "default": {
        "BACKEND": "rabbitbus.tasks.RabbitMQBackend",
        "QUEUES": ["default"],
        "OPTIONS": {"QUEUE_PREFIX": os.environ["RABBITBUS_TEST_WORKER_PREFIX"] + "."},
    }
}
