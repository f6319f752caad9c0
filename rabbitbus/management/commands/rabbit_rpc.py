"""``manage.py rabbit_rpc [name ...]``: serve registered RPC procedures."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus import rpc_server
from rabbitbus.exceptions import RabbitBusError


class Command(BaseCommand):
    help = "Serve RPC procedures (all registered ones unless names are given)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="Procedure names (default: all).")
        parser.add_argument("--prefetch", type=int, default=20, help="Unacked requests at once.")
        parser.add_argument(
            "--concurrency", type=int, default=10, help="Threads for def procedures."
        )
        parser.add_argument("--connection", default="default", help="Connection alias.")

    def handle(self, *args: Any, names: list[str], connection: str, **options: Any) -> None:
        try:
            asyncio.run(self._serve(names, connection, options["prefetch"], options["concurrency"]))
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc

    async def _serve(self, names: list[str], alias: str, prefetch: int, concurrency: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # First signal drains; a second one ends the process (the broker requeues).
            loop.add_signal_handler(signum, self._on_signal, stop)
        await rpc_server.serve(names, stop, alias=alias, prefetch=prefetch, concurrency=concurrency)

    def _on_signal(self, stop: asyncio.Event) -> None:
        if stop.is_set():
            raise SystemExit(1)
        stop.set()
