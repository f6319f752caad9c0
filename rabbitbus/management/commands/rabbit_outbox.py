"""``manage.py rabbit_outbox``: relay outbox rows to RabbitMQ until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections as db_connections

from rabbitbus import outbox
from rabbitbus.exceptions import RabbitBusError
from rabbitbus.observability import metrics
from rabbitbus.outbox.relay import Relay
from rabbitbus.runtime.console import Console
from rabbitbus.transport import connections


class Command(BaseCommand):
    help = "Publish pending outbox messages with confirms (several relays may run at once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="Database alias.")
        parser.add_argument("--batch-size", type=int, help="Rows claimed per batch.")
        parser.add_argument("--once", action="store_true", help="Drain what is due, then exit.")
        parser.add_argument("--prune", action="store_true", help="Delete old sent rows, then exit.")
        parser.add_argument(
            "--status", action="store_true", help="Show row counts and failed rows, then exit."
        )
        parser.add_argument(
            "--retry-failed", action="store_true", help="Make failed rows pending again, then exit."
        )
        metrics.add_metrics_argument(parser)

    def handle(self, *args: Any, database: str, batch_size: int | None, **options: Any) -> None:
        if options["status"]:
            self._status(database)
            return
        if options["prune"]:
            self.stdout.write(f"{outbox.prune(using=database)} sent messages pruned.")
            return
        if options["retry_failed"]:
            self.stdout.write(f"{outbox.retry_failed(using=database)} failed messages requeued.")
            return
        overrides = {"BATCH_SIZE": batch_size} if batch_size else {}
        relay = Relay(using=database, options=overrides)
        console = Console(self.stdout, options["verbosity"])
        relay.observer = console.message
        try:
            if options["once"]:
                while relay.run_once():
                    pass
            else:
                stop = _stop_on_signals()  # before the greeting: an operator may act on it
                self._greet(console, relay, metrics.banner(options["metrics_port"]))
                relay.run(stop)
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            connections.close_all()
        figures = f"{relay.published} published, {relay.failed} failed for good"
        if options["once"]:
            console.say(f"Outbox relay, once: {figures}.")
        else:
            console.say(f"Stopped outbox relay after {console.uptime()}: {figures}.")

    @staticmethod
    def _greet(console: Console, relay: Relay, served: list[str]) -> None:
        vendor = db_connections[relay.using].vendor
        work = [
            f"relays outbox rows of database {relay.using!r} ({vendor}), "
            f"{relay.options.batch_size} per batch, idle wait {relay.options.idle_interval}s",
            *served,
        ]
        console.greet("outbox relay", work, alias="default", loop=None)

    def _status(self, database: str) -> None:
        counts, failed = outbox.status(using=database)
        self.stdout.write(", ".join(f"{count} {name}" for name, count in counts.items()))
        for row in failed:
            self.stdout.write(
                f"failed {row.message_id} {row.exchange}:{row.routing_key} "
                f"after {row.attempts} attempts: {row.last_error}"
            )


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
