"""``shop_simulate``: many shoppers at once through the real views, then how fast orders finished.

:func:`run` plans the orders (a random plentiful product and quantity each, a
declined card for ``decline_rate`` of them), has ``concurrency`` shopper
threads place them (:mod:`.shoppers`, :mod:`.placement`), then polls the
database until every order is confirmed or cancelled, or the timeout passes.
The figures (:mod:`.figures`) come from the orders' status history, so they
measure the whole flow: latency is the ``confirmed`` change's ``at`` minus
the ``placed`` one's; throughput counts final orders from the first checkout
to the last final change. Every run tags its shoppers' emails
(``sim-<tag>-<n>@example.com``), so runs side by side never count each
other's orders. With ``url``, the database must be the server's.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.core.management.base import CommandError

from demo_shop.billing.gateway import DECLINED_PREFIX
from demo_shop.catalog.models import Product
from demo_shop.orders.simulation import figures
from demo_shop.orders.simulation.placement import Placement
from demo_shop.orders.simulation.progress import ProgressBar
from demo_shop.orders.simulation.shoppers import ClientShopper, HttpShopper, OrderSpec, Shopper

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

#: Products with less stock than this when a run starts are never bought (the demo's RB-RARE).
PLENTIFUL = 10
MAX_QUANTITY = 3
GOOD_CARD = "4242424242424242"
DECLINED_CARD = DECLINED_PREFIX + "000000000002"
#: Seconds between two looks at the orders' statuses.
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class Options:
    """A run's settings; :func:`check` says in words what is wrong with them."""

    orders: int
    concurrency: int
    decline_rate: float = 0.0
    timeout: float = 60.0
    url: str | None = None
    seed: int | None = None
    #: Orders per second offered on a fixed schedule (open loop); None: closed loop.
    rate: float | None = None


def check(options: Options) -> None:
    """Raise :class:`CommandError` naming the first bad option."""
    if options.orders < 1:
        raise CommandError(f"--orders must be at least 1 (got {options.orders}).")
    if options.concurrency < 1:
        raise CommandError(f"--concurrency must be at least 1 (got {options.concurrency}).")
    if not 0 <= options.decline_rate <= 1:
        raise CommandError(f"--decline-rate must be between 0 and 1 (got {options.decline_rate}).")
    if options.rate is not None and options.rate <= 0:
        raise CommandError(f"--rate must be more than 0 orders per second (got {options.rate}).")
    if options.timeout <= 0:
        raise CommandError(f"--timeout must be more than 0 seconds (got {options.timeout}).")
    if options.url is not None:
        parts = urlsplit(options.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommandError(f"--url must look like http://127.0.0.1:8000 (got {options.url!r}).")


def shelf() -> list[str]:
    """The skus a simulated shopper may buy (plentiful, not on stocktake: the demo's dead
    letter on purpose is for people); raises :class:`CommandError` when none."""
    plentiful = Product.objects.filter(stock__gte=PLENTIFUL, stocktake=False).order_by("sku")
    skus = list(plentiful.values_list("sku", flat=True))
    if not skus:
        raise CommandError(
            f"No product has {PLENTIFUL} or more in stock: run `python manage.py shop_seed`."
        )
    return skus


def plan(options: Options, skus: list[str], tag: str) -> list[OrderSpec]:
    """The orders to place: exactly ``round(orders * decline_rate)`` with a declined card."""
    rng = random.Random(options.seed)  # noqa: S311 - a shopping mix, not a secret
    declined = set(rng.sample(range(options.orders), round(options.orders * options.decline_rate)))
    return [
        OrderSpec(
            sku=rng.choice(skus),
            quantity=rng.randint(1, MAX_QUANTITY),
            email=f"{email_prefix(tag)}{n}@example.com",
            card_number=DECLINED_CARD if n in declined else GOOD_CARD,
        )
        for n in range(options.orders)
    ]


def email_prefix(tag: str) -> str:
    return f"sim-{tag}-"


def shopper_factory(options: Options) -> Callable[[], Shopper]:
    url = options.url
    if url:
        return lambda: HttpShopper(url)
    return ClientShopper


def run(options: Options, out: SupportsWrite[str], progress: ProgressBar) -> figures.Figures:
    """Place the orders, wait for them, write the figures to ``out``; returns them.

    Raises :class:`CommandError` for bad options, when a checkout fails, when
    the placed orders are not in this database (``url`` of a server on another
    one), or when some orders are not final ``timeout`` seconds after the last
    checkout (the figures are written first).
    """
    check(options)
    tag = uuid.uuid4().hex[:8]
    prefix = email_prefix(tag)
    specs = plan(options, shelf(), tag)
    placement = Placement(
        specs, options.concurrency, shopper_factory(options), rate=options.rate
    ).start()
    watch(placement, prefix, options.timeout, progress)
    if placement.error is not None:
        raise CommandError(f"A shopper failed after {placement.placed} orders: {placement.error}")
    result = figures.collect(prefix, placement.placed, placement.finished - placement.started)
    if options.url and sum(result.statuses.values()) < placement.placed:
        raise CommandError(
            f"The orders placed at {options.url} are not in this database: "
            "run shop_simulate with the server's settings (DATABASE_URL)."
        )
    out.write(figures.describe(result, describe_run(options, tag, placement.late)))
    figures.check_complete(result, options.timeout)
    return result


def describe_run(options: Options, tag: str, late: float = 0.0) -> str:
    how = f"against {options.url}" if options.url else "in-process test clients"
    shoppers = min(options.concurrency, options.orders)  # as many threads as Placement starts
    offered = ""
    if options.rate is not None:
        offered = f", offered at {options.rate:g} orders/s (open loop"
        offered += f", up to {late:.2f} s behind schedule)" if late >= 0.01 else ", on schedule)"
    who = f"{plural(options.orders, 'order')}, {plural(shoppers, 'shopper')} ({how})"
    return f"{tag}: {who}{offered}, {options.decline_rate:.0%} declined cards"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def watch(placement: Placement, prefix: str, timeout: float, progress: ProgressBar) -> None:
    """Poll until every placed order is final, a shopper failed, or ``timeout`` has passed
    since the last checkout."""
    deadline = None
    while True:
        final = figures.final_count(figures.status_counts(prefix))
        progress.draw(final, placement.planned, f"final, {placement.placed} placed")
        if placement.error is not None:
            break
        if not placement.running:
            deadline = deadline or time.monotonic() + timeout
            if final >= placement.placed or time.monotonic() > deadline:
                break
        time.sleep(POLL_INTERVAL)
    placement.join()
    progress.close()
