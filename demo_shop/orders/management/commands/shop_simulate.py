"""``manage.py shop_simulate``: place orders through the real views, report how fast they finished.

The work is in :mod:`demo_shop.orders.simulation`.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo_shop.orders import simulation
from demo_shop.orders.simulation.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Place orders through the storefront's views (in-process, or at --url), wait until each "
        "is confirmed or cancelled, print throughput and p50/p99 checkout-to-confirmed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=int, default=100, help="Orders to place (100).")
        parser.add_argument(
            "--concurrency", type=int, default=10, help="Shoppers placing orders at once (10)."
        )
        parser.add_argument(
            "--decline-rate",
            type=float,
            default=0.0,
            help="Share of orders paid with a declined card (0 to 1; default 0).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            help="Seconds to wait after the last checkout for every order to be final (60).",
        )
        parser.add_argument(
            "--url", help="A running server (http://127.0.0.1:8000) instead of in-process."
        )
        parser.add_argument(
            "--rate",
            type=float,
            help="Orders per second on a fixed schedule (open loop; --concurrency then bounds "
            "the checkouts in flight). Default: closed loop, each shopper at once after the last.",
        )
        parser.add_argument("--seed", type=int, help="Random seed for the mix of orders.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        progress = ProgressBar.for_terminal(
            options.get("stderr") or sys.stderr, wanted=not options["no_progress"]
        )
        run = simulation.Options(
            orders=options["orders"],
            concurrency=options["concurrency"],
            decline_rate=options["decline_rate"],
            timeout=options["timeout"],
            url=options["url"],
            seed=options["seed"],
            rate=options["rate"],
        )
        simulation.run(run, self.stdout, progress)
