"""``manage.py rabbit_status``: the dashboard's overview, in the terminal."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus import monitoring
from rabbitbus.monitoring import report


class Command(BaseCommand):
    help = "Show the broker, queues, dead-letter queues, workers and outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", default="default", help="Connection alias.")
        parser.add_argument("--json", action="store_true", help="Print the snapshot as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        snapshot = monitoring.overview(options["connection"])
        if options["json"]:
            import json

            self.stdout.write(json.dumps(monitoring.as_json(snapshot), indent=2))
        else:
            for line in report.lines(snapshot):
                self.stdout.write(line)
        if not snapshot.reachable:
            raise CommandError("The broker is unreachable.")  # exit status 1, for scripts
