"""``manage.py rabbit_consume [name ...] [--rpc [NAME ...]]``: run consumer workers.

See rabbitbus.consuming.worker; ``--rpc`` also serves RPC procedures (rabbitbus.rpc.server)
in the same process, on the same runtime.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus.consuming import registry, worker
from rabbitbus.exceptions import RabbitBusError
from rabbitbus.management.commands.rabbit_rpc import at_least_one
from rabbitbus.observability import metrics
from rabbitbus.rpc import procedures as rpc_procedures
from rabbitbus.rpc import server as rpc_server
from rabbitbus.runtime import health
from rabbitbus.runtime.console import Console, run_watched
from rabbitbus.runtime.event_loop import add_loop_argument


class Command(BaseCommand):
    help = "Run the registered @consumer handlers (all, or those named) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="Consumer names (default: all).")
        parser.add_argument("--prefetch", type=int, help="Override every consumer's prefetch.")
        parser.add_argument(
            "--concurrency", type=int, help="Override every consumer's concurrency."
        )
        parser.add_argument("--connection", default="default", help="Connection alias.")
        add_loop_argument(parser)
        metrics.add_metrics_argument(parser)
        parser.add_argument(
            "--rpc",
            nargs="*",
            metavar="NAME",
            help="Also serve these RPC procedures (all registered ones if no name follows).",
        )
        parser.add_argument(
            "--tasks",
            nargs="*",
            metavar="QUEUE",
            help="Also run django.tasks tasks of these queues of TASKS['default'] (all if none "
            "follows; see rabbit_tasks).",
        )
        parser.add_argument(
            "--list", action="store_true", help="Print handlers, queues, bindings; exit."
        )
        parser.add_argument(
            "--check", action="store_true", help="Exit 0 if a worker's heartbeat is fresh."
        )
        parser.add_argument(
            "--prune", action="store_true", help="Delete old processed-message rows; exit."
        )

    def handle(self, *args: Any, names: list[str], **options: Any) -> None:
        if options["check"]:
            return self._check()
        if options["prune"]:
            self.stdout.write(f"Deleted {health.prune_processed()} processed-message rows.")
            return None
        try:
            specs = [self._override(spec, options) for spec in registry.select(names)]
            procedures = self._rpc_services(options)
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc
        tasks = self._task_services(options)
        if not specs and not procedures and not tasks:
            raise CommandError(
                "No consumers registered (define @rabbitbus.consumer in <app>/rabbit.py)."
            )
        if options["list"]:
            self.stdout.write("\n".join(worker.summary(specs) + rpc_server.summary(procedures)))
            return None
        try:
            self._run(specs, [*procedures, *tasks], options)
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc
        return None

    def _run(
        self,
        specs: list[registry.ConsumerSpec],
        procedures: list[Any],
        options: dict[str, Any],
    ) -> None:
        """Serve until stopped, greeting first and summing up after (rabbitbus.runtime.console)."""
        alias, loop = options["connection"], options["loop"]
        runtime = worker.consumer_runtime(specs, alias=alias, services=procedures)
        work = [f"consumes {line}" for line in worker.summary(specs)]
        servers = [p for p in procedures if isinstance(p, rpc_server.RpcService)]
        work += [f"serves {line}" for line in rpc_server.summary(servers)]
        work += [f"runs tasks of {p.spec.queue}" for p in procedures if p not in servers]
        work += metrics.banner(options["metrics_port"])
        title = "consumer worker" + (" and RPC server" if procedures else "")
        run = functools.partial(worker.run, specs, alias=alias, loop=loop, runtime=runtime)
        run_watched(Console(self.stdout, options["verbosity"], loop), runtime, title, work, run)

    def _check(self) -> None:
        ok, message = health.check()
        if not ok:
            raise CommandError(message)
        self.stdout.write(message)

    @staticmethod
    def _rpc_services(options: dict[str, Any]) -> list[rpc_server.RpcService]:
        if options["rpc"] is None:
            return []
        rpc_procedures.check_names(options["rpc"])  # an unknown one: the registered ones too
        prefetch, concurrency = options["prefetch"], options["concurrency"]
        return rpc_server.services(
            options["rpc"],
            prefetch=at_least_one("prefetch", given(prefetch, rpc_server.PREFETCH)),
            concurrency=at_least_one("concurrency", given(concurrency, rpc_server.CONCURRENCY)),
        )

    @staticmethod
    def _task_services(options: dict[str, Any]) -> list[Any]:
        if options["tasks"] is None:
            return []
        from rabbitbus.management.commands.rabbit_tasks import task_services

        return task_services("default", options["tasks"], given(options["concurrency"], 4))

    @staticmethod
    def _override(spec: registry.ConsumerSpec, options: dict[str, Any]) -> registry.ConsumerSpec:
        changes = {
            key: options[key] for key in ("prefetch", "concurrency") if options[key] is not None
        }
        if not changes:
            return spec
        spec = dataclasses.replace(spec, **changes)
        registry.validate(spec)
        return spec


def given(value: int | None, default: int) -> int:
    """An option's value if it was given (0 included, to be refused), else ``default``."""
    return default if value is None else value
