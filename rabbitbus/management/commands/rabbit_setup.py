"""``manage.py rabbit_setup``: declare every exchange, queue and binding."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus import topology
from rabbitbus.exceptions import RabbitBusError
from rabbitbus.transport import connections, declare


class Command(BaseCommand):
    help = "Declare the RabbitMQ topology from settings and apps (idempotent). -v0 prints nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", default="default", help="Connection alias.")

    def handle(self, *args: Any, connection: str, **options: Any) -> None:
        try:
            conn = connections.get_sync(connection)
            declared = declare.declare(conn.get().channel(), topology.configured())
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] == 0:
            return
        for entity in declared:
            self.stdout.write(f"declared {topology.describe(entity)}")
        self.stdout.write(self.style.SUCCESS(f"{len(declared)} entities declared."))
