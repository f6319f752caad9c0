"""``manage.py rabbit_rpc [name ...]``: serve RPC procedures (see rabbitbus.rpc.server)."""

from __future__ import annotations

import functools
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus.exceptions import RabbitBusError
from rabbitbus.observability import metrics
from rabbitbus.rpc import server as rpc_server
from rabbitbus.runtime.console import Console, run_watched
from rabbitbus.runtime.event_loop import add_loop_argument
from rabbitbus.runtime.service import Runtime


class Command(BaseCommand):
    help = "Serve RPC procedures (all registered ones unless names are given) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="Procedure names (default: all).")
        parser.add_argument(
            "--prefetch", type=int, default=rpc_server.PREFETCH, help="Unacked requests at once."
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=rpc_server.CONCURRENCY,
            help="Requests run at once (threads for def procedures).",
        )
        parser.add_argument("--connection", default="default", help="Connection alias.")
        add_loop_argument(parser)
        metrics.add_metrics_argument(parser)

    def handle(self, *args: Any, names: list[str], connection: str, **options: Any) -> None:
        loop = options["loop"]
        console = Console(self.stdout, options["verbosity"], loop)
        try:
            chosen = rpc_server.services(
                names, prefetch=options["prefetch"], concurrency=options["concurrency"]
            )
            runtime = Runtime(chosen, alias=connection)
            work = [f"serves {line}" for line in rpc_server.summary(chosen)]
            work += metrics.banner(options["metrics_port"])
            run = functools.partial(rpc_server.run, names, loop=loop, runtime=runtime)
            run_watched(console, runtime, "RPC server", work, run)
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc
