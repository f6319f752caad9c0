"""bench/tasks.py's settings: PostgreSQL, rabbitbus's task backend, django-tasks-db's,
and django-celery-results for the Celery baseline."""

from bench.settings_worker import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db", "django_celery_results"]  # noqa: F405
_RABBIT = {"BACKEND": "rabbitbus.tasks.RabbitMQBackend", "QUEUES": ["default"]}
TASKS = {
    # The default: enqueue records the READY row, as django-tasks-db does.
    "default": {**_RABBIT, "OPTIONS": {"QUEUE_PREFIX": "bench."}},
    # The first row is the worker's (RECORD_ENQUEUED off): same queues.
    "lean": {**_RABBIT, "OPTIONS": {"QUEUE_PREFIX": "bench.", "RECORD_ENQUEUED": False}},
    # A classic queue (MAX_PRIORITY makes the work queues classic) instead of a quorum one.
    "classic": {**_RABBIT, "OPTIONS": {"QUEUE_PREFIX": "bench-classic.", "MAX_PRIORITY": 9}},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
