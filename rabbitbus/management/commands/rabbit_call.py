"""``manage.py rabbit_call NAME [ARG ...]``: call an RPC procedure from the terminal."""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus import rpc
from rabbitbus.exceptions import RabbitBusError


def json_or_text(raw: str) -> Any:
    """``30`` -> 30, ``'"x"'`` -> "x", ``x`` -> "x" (bare words are strings)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Command(BaseCommand):
    help = "Call a registered RPC procedure with JSON arguments and print its JSON result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Procedure name, e.g. fib.")
        parser.add_argument("arguments", nargs="*", help="Positional arguments, each JSON.")
        parser.add_argument("--kwargs", default="{}", help="Keyword arguments as a JSON object.")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait.")
        parser.add_argument("--connection", default="default", help="Connection alias.")

    def handle(
        self, *args: Any, name: str, timeout: float, connection: str, **options: Any
    ) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise CommandError(f"--timeout must be a positive number of seconds, not {timeout!r}.")
        kwargs = json_or_text(options["kwargs"])
        if not isinstance(kwargs, dict):
            raise CommandError("--kwargs must be a JSON object.")
        positional = [json_or_text(raw) for raw in options["arguments"]]
        try:
            result = rpc.call(name, *positional, timeout=timeout, connection=connection, **kwargs)
        except RabbitBusError as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        self.stdout.write(json.dumps(result, ensure_ascii=False))
