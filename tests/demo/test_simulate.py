"""shop_simulate: its pure parts, its shoppers against the real views, and how it fails.

The views run for real (the checkout page asks ``catalog.quote`` over RPC, so
an in-process RPC server answers it); the workers mostly do not, so orders
stay ``placed``. The last test runs a small simulation against the shop's
real worker processes (``tests/shop_services.py``, on PostgreSQL).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from pytest_django.live_server_helper import LiveServer

from demo_shop.catalog.models import Product
from demo_shop.orders import simulation
from demo_shop.orders.models import Order
from demo_shop.orders.simulation import figures
from demo_shop.orders.simulation.placement import Placement
from demo_shop.orders.simulation.progress import ProgressBar
from demo_shop.orders.simulation.shoppers import (
    CheckoutFailed,
    ClientShopper,
    HttpShopper,
    OrderSpec,
    Shopper,
    order_id,
    page_error,
)
from tests.rpc_support import serving
from tests.shop_services import ShopServices


@pytest.fixture
def seeded(transactional_db: None) -> None:
    """Products committed, so shopper threads and the RPC server see them."""
    call_command("shop_seed", stdout=io.StringIO())


@pytest.fixture
def quotes(seeded: None) -> Iterator[None]:
    with serving("catalog.quote"):
        yield


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("shop_simulate", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# Pure parts.


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert figures.percentile(values, 50) == 50
    assert figures.percentile(values, 99) == 99
    assert figures.percentile(values, 100) == 100
    assert figures.percentile([0.5, 2.0], 50) == 0.5
    assert figures.percentile([0.5, 2.0], 99) == 2.0
    assert figures.percentile([7.0], 1) == 7.0


@pytest.mark.parametrize(("values", "p"), [([], 50), ([1.0], 0), ([1.0], 101)])
def test_percentile_refuses_nonsense(values: list[float], p: float) -> None:
    with pytest.raises(ValueError):
        figures.percentile(values, p)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orders", "0"], "--orders must be at least 1 (got 0)."),
        (["--concurrency", "0"], "--concurrency must be at least 1 (got 0)."),
        (["--decline-rate", "1.5"], "--decline-rate must be between 0 and 1 (got 1.5)."),
        (["--decline-rate", "-0.1"], "--decline-rate must be between 0 and 1 (got -0.1)."),
        (["--timeout", "0"], "--timeout must be more than 0 seconds (got 0.0)."),
        (["--url", "ftp://example.com"], "--url must look like http://127.0.0.1:8000"),
        (["--url", "127.0.0.1:8000"], "--url must look like http://127.0.0.1:8000"),
        (["--rate", "0"], "--rate must be more than 0 orders per second (got 0.0)."),
    ],
)
def test_bad_options_are_a_command_error_that_says_which(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        simulate(*args)
    assert str(caught.value).startswith(message)


class Stopwatch:
    """A shopper that only notes when each order was placed (pure: no views, no broker)."""

    placed: ClassVar[list[float]] = []

    def place(self, spec: OrderSpec) -> int:
        Stopwatch.placed.append(time.monotonic())
        return len(Stopwatch.placed)

    def close(self) -> None:
        pass


def test_an_open_loop_places_each_order_no_earlier_than_its_turn() -> None:
    Stopwatch.placed = []
    specs = [OrderSpec("RB-TEE", 1, f"sim-x-{n}@example.com", "4242") for n in range(12)]
    placement = Placement(specs, 4, Stopwatch, rate=40).start()  # type: ignore[arg-type]
    placement.join()
    assert placement.placed == 12 and placement.error is None
    turns = sorted(Stopwatch.placed)
    assert all(at >= placement.started + n / 40 for n, at in enumerate(turns))


def test_a_closed_loop_places_orders_as_fast_as_the_shoppers_go() -> None:
    Stopwatch.placed = []
    specs = [OrderSpec("RB-TEE", 1, f"sim-x-{n}@example.com", "4242") for n in range(12)]
    placement = Placement(specs, 4, Stopwatch).start()  # type: ignore[arg-type]
    placement.join()
    assert placement.placed == 12 and placement.late == 0.0


@pytest.mark.django_db
def test_an_empty_shelf_says_to_seed() -> None:
    with pytest.raises(CommandError, match="run `python manage.py shop_seed`"):
        simulate("--orders", "1")


@pytest.mark.django_db
def test_the_shelf_has_only_plentiful_products_not_on_stocktake() -> None:
    call_command("shop_seed", stdout=io.StringIO())
    Product.objects.filter(sku="RB-SOCK").update(stock=simulation.PLENTIFUL - 1)
    assert simulation.shelf() == ["RB-HOOD", "RB-MUG", "RB-TEE"]


def test_plan_declines_the_asked_share_and_tags_every_email() -> None:
    options = simulation.Options(orders=40, concurrency=4, decline_rate=0.25, seed=7)
    specs = simulation.plan(options, ["A", "B"], "t1")
    assert len(specs) == 40
    assert sum(spec.card_number == simulation.DECLINED_CARD for spec in specs) == 10
    assert {spec.card_number for spec in specs} == {simulation.DECLINED_CARD, simulation.GOOD_CARD}
    assert {spec.sku for spec in specs} == {"A", "B"}
    assert {spec.quantity for spec in specs} <= set(range(1, simulation.MAX_QUANTITY + 1))
    assert len({spec.email for spec in specs}) == 40
    assert all(spec.email.startswith(simulation.email_prefix("t1")) for spec in specs)
    assert simulation.plan(options, ["A", "B"], "t1") == specs


def test_plan_without_declines_pays_every_order() -> None:
    specs = simulation.plan(simulation.Options(orders=5, concurrency=1), ["A"], "t")
    assert {spec.card_number for spec in specs} == {simulation.GOOD_CARD}


def test_progress_bar_draws_in_place_and_ends_its_line() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    bar.draw(5, 10, "final")
    bar.draw(10, 10, "final")
    bar.close()
    first, second = stream.getvalue().split("\r")[1:]
    assert first.startswith("[" + "#" * 15 + "." * 15 + "] 5/10 final")
    assert second.startswith("[" + "#" * 30 + "] 10/10 final")
    assert stream.getvalue().endswith("\n")


def test_progress_bar_is_silent_off_a_terminal_or_when_not_wanted() -> None:
    stream = io.StringIO()  # not a TTY
    for bar in (ProgressBar.for_terminal(stream), ProgressBar(stream, enabled=False)):
        bar.draw(1, 2)
        bar.close()
    assert stream.getvalue() == ""


def test_order_id_comes_from_the_checkout_redirect() -> None:
    assert order_id("/orders/12/") == 12
    assert order_id("http://127.0.0.1:8000/orders/7/") == 7
    for elsewhere in ("/checkout/", "/nowhere/", ""):
        with pytest.raises(CheckoutFailed, match="not to an order"):
            order_id(elsewhere)


def test_page_error_quotes_the_pages_error_paragraph() -> None:
    body = b'<p class="error" id="quote-problem">We could not &quot;check&quot;.</p>'
    assert page_error(body) == ': We could not "check".'
    assert page_error(b"<p>fine</p>") == ""


# Figures from a run's status history.


START = datetime(2026, 1, 1, tzinfo=UTC)


def order_with_history(email: str, *steps: tuple[str, float]) -> Order:
    """An order whose status changed to each ``(status, seconds after the start)``."""
    order = Order.objects.create(email=email, card_number="4242", status=steps[-1][0])
    for status, seconds in steps:
        change = order.history.create(status=status)
        order.history.filter(pk=change.pk).update(at=START + timedelta(seconds=seconds))
    return order


@pytest.mark.django_db
def test_figures_measure_checkout_to_confirmed_and_first_checkout_to_last_final() -> None:
    order_with_history("sim-t-1@example.com", ("placed", 0), ("paid", 0.5), ("confirmed", 1))
    order_with_history("sim-t-2@example.com", ("placed", 1), ("confirmed", 4))
    order_with_history("sim-t-3@example.com", ("placed", 2), ("cancelled", 2.5))
    order_with_history("sim-other-1@example.com", ("placed", 0), ("confirmed", 60))
    result = figures.collect("sim-t-", placed=3, checkout_seconds=2.0)
    assert result.latencies == [1.0, 3.0]
    assert result.flow_seconds == 4.0
    assert result.throughput == 0.75
    assert result.unfinished == {}
    text = figures.describe(result, "t")
    assert "Final: 2 confirmed, 1 cancelled, 0 not final." in text
    assert "Throughput: 0.8 orders/s (3 final orders, 4.0 s from first checkout" in text
    assert "Checkout to confirmed: p50 1.000 s, p99 3.000 s, max 3.000 s." in text
    figures.check_complete(result, timeout=60)


@pytest.mark.django_db
def test_figures_say_where_the_time_goes_step_by_step() -> None:
    first = order_with_history("sim-t-1@example.com", ("placed", 0), ("confirmed", 1))
    second = order_with_history("sim-t-2@example.com", ("placed", 1), ("confirmed", 4))
    other = order_with_history("sim-other-1@example.com", ("placed", 0), ("confirmed", 60))
    for order, message, service, seconds in [
        (first, "order.placed", "inventory", 0.2),
        (first, "order.placed", "billing", 0.3),
        (first, "invoice.issued", "orders", 1.0),
        (second, "order.placed", "inventory", 1.4),
        (second, "order.placed", "billing", 2.5),
        (second, "invoice.issued", "orders", 4.0),
        (other, "order.placed", "inventory", 30.0),
    ]:
        entry = order.timeline.create(message=message, service=service, outcome="ok")
        order.timeline.filter(pk=entry.pk).update(at=START + timedelta(seconds=seconds))
    result = figures.collect("sim-t-", placed=2, checkout_seconds=1.0)
    assert result.steps == {
        "order.placed by inventory": [0.2, 0.4],
        "order.placed by billing": [0.3, 1.5],
        "invoice.issued by orders": [1.0, 3.0],
    }
    lines = figures.describe(result, "t").splitlines()
    start = lines.index("Where the time goes (seconds from checkout to each handling, p50 / p99):")
    assert lines[start + 1 :] == [
        "  order.placed by inventory    0.200 /   0.400  (2 handled)",
        "  order.placed by billing      0.300 /   1.500  (2 handled)",
        "  invoice.issued by orders     1.000 /   3.000  (2 handled)",
    ]


@pytest.mark.django_db
def test_unfinished_orders_are_counted_by_status() -> None:
    order_with_history("sim-t-1@example.com", ("placed", 0), ("confirmed", 1))
    order_with_history("sim-t-2@example.com", ("placed", 0), ("paid", 1))
    order_with_history("sim-t-3@example.com", ("placed", 0))
    order_with_history("sim-t-4@example.com", ("placed", 0))
    result = figures.collect("sim-t-", placed=4, checkout_seconds=1.0)
    assert result.unfinished == {"paid": 1, "placed": 2}
    with pytest.raises(CommandError) as caught:
        figures.check_complete(result, timeout=30)
    assert str(caught.value) == (
        "3 of 4 orders not final 30 s after the last checkout: 1 paid, 2 placed."
    )


@pytest.mark.django_db
def test_nothing_confirmed_says_so() -> None:
    order_with_history("sim-t-1@example.com", ("placed", 0), ("cancelled", 1))
    result = figures.collect("sim-t-", placed=1, checkout_seconds=1.0)
    assert "Checkout to confirmed: no order was confirmed." in figures.describe(result, "t")


# Shoppers and runs against the real views (no workers: orders stay placed).


@pytest.fixture(params=["client", "http"])
def make_shopper(request: pytest.FixtureRequest) -> Callable[[], Shopper]:
    if request.param == "client":
        return ClientShopper
    server: LiveServer = request.getfixturevalue("live_server")
    return lambda: HttpShopper(server.url)


def test_a_shopper_places_an_order_through_the_views(
    quotes: None, make_shopper: Callable[[], Shopper]
) -> None:
    shopper = make_shopper()
    try:
        placed = shopper.place(OrderSpec("RB-TEE", 2, "sim-x-1@example.com", "4000000000000123"))
    finally:
        shopper.close()
    order = Order.objects.get(pk=placed)
    assert (order.email, order.card_number, order.status) == (
        "sim-x-1@example.com",
        "4000000000000123",
        "placed",
    )
    assert [(line.product.sku, line.quantity) for line in order.lines.all()] == [("RB-TEE", 2)]


@override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost"])  # docker-compose.yml's
def test_the_in_process_shopper_uses_a_host_the_settings_allow(quotes: None) -> None:
    shopper = ClientShopper()
    try:
        placed = shopper.place(OrderSpec("RB-MUG", 1, "sim-x-1@example.com", "4242424242424242"))
    finally:
        shopper.close()
    assert Order.objects.filter(pk=placed).exists()


def test_without_the_price_service_the_run_stops_with_the_pages_words(
    seeded: None, make_shopper: Callable[[], Shopper]
) -> None:
    shopper = make_shopper()
    try:
        with pytest.raises(CheckoutFailed) as caught:
            shopper.place(OrderSpec("RB-TEE", 1, "sim-x-1@example.com", "4242424242424242"))
    finally:
        shopper.close()
    # "is not running", or "did not answer" once an earlier test's server left its queue.
    assert str(caught.value).startswith(
        "GET /checkout/ answered 503, not 200: We could not check current prices: the price service"
    )


# Whole runs: shopper threads write at once, which the shared in-memory SQLite test database
# refuses ("table is locked": shared-cache mode does not wait), so these run on PostgreSQL.


@pytest.mark.postgres
def test_a_failed_checkout_is_a_command_error(seeded: None) -> None:
    with pytest.raises(CommandError) as caught:
        simulate("--orders", "3", "--concurrency", "2")
    assert str(caught.value).startswith("A shopper failed after 0 orders: GET /checkout/")
    assert not Order.objects.exists()


@pytest.mark.postgres
def test_orders_that_never_finish_fail_the_run_after_the_timeout(quotes: None) -> None:
    with pytest.raises(CommandError) as caught:
        simulate("--orders", "3", "--concurrency", "2", "--timeout", "0.3")
    assert str(caught.value) == ("3 of 3 orders not final 0.3 s after the last checkout: 3 placed.")
    assert Order.objects.filter(email__startswith="sim-").count() == 3


@pytest.mark.postgres
def test_a_small_run_through_the_real_services_finishes_every_order(
    transactional_db: None, shop: ShopServices
) -> None:
    out = simulate("--orders", "5", "--concurrency", "2", "--decline-rate", "0.4", "--rate", "5")
    assert "offered at 5 orders/s (open loop" in out
    assert "Final: 3 confirmed, 2 cancelled, 0 not final." in out
    assert "Checkout to confirmed: p50 " in out
    confirmed = Order.objects.filter(status=Order.Status.CONFIRMED).values_list("pk", flat=True)
    assert shop.wait_invoice_tasks(list(confirmed)), shop.log("billing")  # sent by a task
    assert len(shop.emails()) == 3
