"""``manage.py rabbit_rpc [name ...]``: serve RPC procedures (see rabbitbus.rpc.server)."""

from __future__ import annotations

import functools
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus.exceptions import RabbitBusError
from rabbitbus.observability import metrics
from rabbitbus.rpc import procedures
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
        prefetch = at_least_one("prefetch", options["prefetch"])
        concurrency = at_least_one("concurrency", options["concurrency"])
        try:
            procedures.check_names(names)  # an unknown one is named with the registered ones
            chosen = rpc_server.services(names, prefetch=prefetch, concurrency=concurrency)
            runtime = Runtime(chosen, alias=connection)
            work = [f"serves {line}" for line in rpc_server.summary(chosen)]
            work += metrics.banner(options["metrics_port"])
            run = functools.partial(rpc_server.run, names, loop=loop, runtime=runtime)
            run_watched(console, runtime, "RPC server", work, run)
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc


def at_least_one(option: str, value: int) -> int:
    """``value`` of ``--<option>``, refused below 1: RabbitMQ reads a prefetch of 0 as "no
    limit", and a server with no slot would never run a request."""
    if value < 1:
        raise CommandError(f"--{option} must be at least 1, not {value}.")
    return value
