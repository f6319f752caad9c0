"""``manage.py rabbit_tasks [--queue NAME ...] [--concurrency N]``: run django.tasks tasks.

Runs the task queues of one ``TASKS`` backend (rabbitbus.tasks.RabbitMQBackend)
on the consumer workers' runtime: graceful SIGTERM (the running tasks finish),
reconnects, heartbeats; ``--metrics-port`` serves Prometheus metrics (the task counts
among them). ``--prune [DAYS]`` deletes older finished results and exits.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus.consuming import worker
from rabbitbus.exceptions import ConfigurationError, RabbitBusError
from rabbitbus.observability import metrics
from rabbitbus.runtime.event_loop import add_loop_argument

#: ``--prune`` with no number: keep OPTIONS["RESULT_RETENTION_DAYS"]. No number (nor a
#: string, which argparse would convert), so no DAYS given can be taken for it: ``-1`` is refused.
RETENTION = object()


class Command(BaseCommand):
    help = "Run django.tasks tasks from RabbitMQ (TASKS backend rabbitbus.tasks.RabbitMQBackend)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", dest="queues", metavar="NAME",
            help="A Django task queue to run (repeat; default: all of the backend's QUEUES).",
        )  # fmt: skip
        parser.add_argument(
            "--concurrency", type=int, default=4, help="Tasks run at once per queue (default 4)."
        )
        parser.add_argument("--backend", default="default", help="The TASKS alias.")
        parser.add_argument(
            "--prune", type=float, nargs="?", const=RETENTION, metavar="DAYS",
            help="Delete results finished more than DAYS (default: OPTIONS"
            "['RESULT_RETENTION_DAYS']) ago, then exit.",
        )  # fmt: skip
        add_loop_argument(parser)
        metrics.add_metrics_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from rabbitbus.tasks import results

        backend = task_backend(options["backend"])
        if options["prune"] is not None:
            days = prune_days(options["prune"], backend.options_.result_retention_days)
            deleted = results.prune(days, backend.options_.database)
            self.stdout.write(f"Deleted {deleted} task results.")
            return
        services = task_services(options["backend"], options["queues"], options["concurrency"])
        for service in services:
            self.stdout.write(f"Running tasks of queue {service.spec.queue}")
        try:
            for line in metrics.banner(options["metrics_port"]):
                self.stdout.write(f"Serving {line}")
            alias = backend.options_.connection
            worker.run([], alias=alias, services=services, loop=options["loop"])
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc


def prune_days(given: Any, retention: float) -> float:
    """The days ``--prune`` keeps: ``retention`` when no number followed it; raises
    ``CommandError`` for a number that is not positive (``-1`` is no default)."""
    if given is RETENTION:
        return retention
    if not (isinstance(given, int | float) and math.isfinite(given) and given > 0):
        raise CommandError(f"--prune DAYS must be a positive number of days, not {given!r}.")
    return float(given)


def task_backend(alias: str) -> Any:
    """The ``RabbitMQBackend`` of ``TASKS[alias]``; raises ``CommandError``."""
    from rabbitbus.tasks.backend import RabbitMQBackend
    from rabbitbus.tasks.compat import task_backends

    try:
        backend = task_backends[alias]
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - InvalidTaskBackend, under either name
        raise CommandError(f"No TASKS backend {alias!r}: {exc}") from exc
    if not isinstance(backend, RabbitMQBackend):
        raise CommandError(f"TASKS[{alias!r}] is not rabbitbus.tasks.RabbitMQBackend.")
    return backend


def task_services(alias: str, names: list[str] | None, concurrency: int) -> list[Any]:
    """The services running queues ``names`` (all if empty) of ``TASKS[alias]``."""
    from rabbitbus.tasks import runner

    backend = task_backend(alias)
    names = names or sorted(backend.queues)
    unknown = sorted(set(names) - backend.queues)
    if unknown:
        raise CommandError(f"Unknown task queues {unknown}; QUEUES: {sorted(backend.queues)}.")
    if concurrency < 1:
        raise CommandError("--concurrency must be at least 1.")
    return runner.services(backend, names, concurrency)
