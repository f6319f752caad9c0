"""The demo as a new user meets it: ``scripts/demo.sh`` itself, then a real browser.

The script runs unchanged (its own daphne, workers, settings and static files),
pointed by its environment at a free port, a throwaway SQLite file and a vhost of
its own. Chromium then checks what a user sees: the admin's CSS applies, the
dashboard is live over the WebSocket and draws its charts, the topology page
draws, and the documented dead letter (docs/dead-letter-demo.md) is read, fixed and
replayed from the admin to a confirmed order whose timeline fills in live. With
``RABBITBUS_SCREENSHOTS=1`` it saves the pictures the README links to.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import MANAGEMENT_PORT, Broker, add_vhost, delete_vhost
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, wait_listening

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed"
    ),
]

SCREENSHOTS = ROOT / "docs" / "images"
SCREENSHOTS_WANTED = os.environ.get("RABBITBUS_SCREENSHOTS") == "1"
ARTIFACTS = ROOT / "test-artifacts"
#: the admin's --header-bg in its light theme (#417690), as computed styles print it
ADMIN_HEADER = "rgb(65, 118, 144)"
#: the admin's --error-fg in its light theme (#ba2121): how dead-letter queues are marked
ERROR_FG = "rgb(186, 33, 33)"


@pytest.fixture
def demo(broker: Broker, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``bash scripts/demo.sh`` on a free port; yields its URL and environment; stops it
    as Ctrl-C would."""
    vhost = f"{broker.vhost}-demo"
    add_vhost(vhost)
    port = free_port()
    env = {
        **os.environ,
        "DEMO_PORT": str(port),
        "DEMO_PYTHON": sys.executable,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "RABBITBUS_URL": Broker(vhost).url(),
        "RABBITBUS_MANAGEMENT_URL": f"http://127.0.0.1:{MANAGEMENT_PORT}",
        "DJANGO_EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "demo.log").open("wb")
    script = subprocess.Popen(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the script and everything it started
    )  # fmt: skip
    try:
        wait_listening(port, script, timeout=120)
        yield f"http://127.0.0.1:{port}", env
    finally:
        _stop(script)
        log.close()
        delete_vhost(vhost)


def _stop(script: subprocess.Popen[bytes]) -> None:
    """SIGINT to the script (its trap stops the workers and daphne), SIGKILL to stragglers."""
    os.killpg(script.pid, signal.SIGINT)
    try:
        script.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)


def log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/admin/login/?next=/admin/rabbitbus/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/rabbitbus/dashboard/")


def place_order(page: Any, url: str) -> None:
    """Buy the first product through the shop's own pages, as a customer would."""
    page.goto(f"{url}/")
    page.locator("button[type=submit]").first.click()
    page.wait_for_url("**/cart/")  # the cart is in the session once its page shows
    page.goto(f"{url}/checkout/")
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/orders/\d+/$"))


def save(page: Any, name: str) -> None:
    """Screenshots of the page in the admin's light and dark themes, when asked for."""
    if not SCREENSHOTS_WANTED:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SCREENSHOTS / f"{name}-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")


def shoppers(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``shop_simulate`` against the running demo: orders, some declined, in the background."""
    orders = "400" if SCREENSHOTS_WANTED else "40"  # a picture worth looking at takes longer
    command = ["manage.py", "shop_simulate", "--url", url, "--orders", orders, "--concurrency", "2"]
    command += ["--decline-rate", "0.2", "--seed", "14", "--no-progress"]
    env = {**env, "DJANGO_SETTINGS_MODULE": "demo_shop.settings"}
    log = ARTIFACTS / "shop_simulate.log"
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


#: the "max N" a chart prints: the largest value it draws
CHART_MAX = "([row, chart]) => document.querySelector(`${row} svg[data-chart=${chart}] text`)"


def check_dashboard(page: Any, url: str, env: dict[str, str]) -> None:
    page.goto(f"{url}/admin/rabbitbus/dashboard/")
    header = page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header == ADMIN_HEADER, "the admin's CSS does not apply"
    assert "queues by management API" in page.inner_text("#rb-broker")
    page.wait_for_function(
        "document.getElementById('rb-live').textContent === 'WebSocket'", timeout=20000
    )
    row = 'tr[data-queue="inventory.orders"]'
    drawn = (
        "([row]) => ['depth', 'rates'].every(chart => Number(document.querySelector("
        "`${row} svg[data-chart=${chart}]`).dataset.points || 0) >= 2)"
    )
    page.wait_for_function(drawn, arg=[row], timeout=30000)
    page.evaluate("window.rabbitbusMarker = 'not reloaded'")
    # Orders placed now reach the chart through the broker's samples (every 5-10 s).
    traffic = shoppers(url, env)
    try:
        published = CHART_MAX + ".textContent !== 'max 0'"
        page.wait_for_function(published, arg=[row, "rates"], timeout=90000)
    finally:
        assert traffic.wait(timeout=120) == 0, (ARTIFACTS / "shop_simulate.log").read_text()
    assert page.evaluate("window.rabbitbusMarker") == "not reloaded"
    assert float(page.locator(f'{row} td[data-field="publish_rate"]').inner_text()) >= 0
    save(page, "dashboard")
    check_queue_filters(page)


def check_queue_filters(page: Any) -> None:
    """Many queues stay readable: retry queues only when asked for, a filter by name."""
    visible = "#rb-queues tr[data-queue]:visible"
    assert page.locator(f"{visible}.rb-retry").count() == 0
    page.check("#rb-show-retry")
    assert page.locator(f"{visible}.rb-retry").count() >= 3
    page.fill("#rb-filter", "orders.saga")
    names = page.locator(visible).evaluate_all("rows => rows.map(row => row.dataset.queue)")
    assert names and all(name.startswith("orders.saga") for name in names)


def check_topology(page: Any, url: str) -> None:
    page.click("text=Topology")
    page.wait_for_url("**/dashboard/topology/")
    page.wait_for_function("Number(document.getElementById('rb-topology')?.dataset.drawn) > 0")
    for name in ("shop", "inventory.orders", "inventory", "catalog.quote"):
        assert page.locator(f'#rb-topology g.rb-node[data-name="{name}"]').count() >= 1, name
    assert page.locator("#rb-topology .rb-kind-retry").count() >= 3
    assert "1 connected" in page.text_content('#rb-topology g.rb-node[data-name="inventory"]')
    dead = page.locator('#rb-topology .rb-kind-dead-letter[data-name="inventory.orders.dlq"] rect')
    assert dead.evaluate("rect => getComputedStyle(rect).stroke") == ERROR_FG
    assert page.locator("#rb-topology text.rb-key", has_text="order.placed").count() >= 1
    save(page, "topology")


DLQ = "inventory.orders.dlq"


def order_the_crate(page: Any, url: str) -> str:
    """Order the product on stocktake (docs/dead-letter-demo.md); returns the order's URL."""
    page.goto(f"{url}/")
    page.locator("tr", has_text="Carrot crate").get_by_role("button").click()
    page.wait_for_url("**/cart/")
    page.goto(f"{url}/checkout/")
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/orders/\d+/$"))
    # Billing's step shows up live while inventory's keeps failing.
    has_row = "(text) => document.querySelector('#timeline tbody').textContent.includes(text)"
    page.wait_for_function(has_row, arg="payment.captured", timeout=30000)
    assert page.inner_text("#status") == "placed"
    return str(page.url)


def wait_for_dead_letter(page: Any, url: str) -> None:
    """Reload the DLQ's admin page until the crate's message is there (retries take ~3 s)."""
    for _ in range(60):
        page.goto(f"{url}/admin/rabbitbus/dashboard/dlq/{DLQ}/")
        if "StocktakeInProgress" in page.content():
            return
        page.wait_for_timeout(1000)
    raise AssertionError(f"no dead letter in {DLQ}")


def replay_after_the_fix(page: Any, url: str) -> None:
    """Untick Stocktake in the product list, then Replay all and confirm."""
    page.goto(f"{url}/admin/catalog/product/?q=RB-CRATE")
    page.uncheck('input[name="form-0-stocktake"]')
    page.click('input[name="_save"]')
    page.wait_for_selector(".messagelist .success")
    page.goto(f"{url}/admin/rabbitbus/dashboard/dlq/{DLQ}/")
    page.click("button:has-text('Replay all')")
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector(".messagelist .success")
    assert "Replayed 1 message" in page.inner_text(".messagelist")


def check_dead_letter_replay(page: Any, url: str) -> None:
    """docs/dead-letter-demo.md in the browser: the order waits, is replayed, confirms live."""
    order = order_the_crate(page, url)
    wait_for_dead_letter(page, url)
    replay_after_the_fix(page, url)
    page.goto(order)
    page.wait_for_function(
        "document.getElementById('status').textContent === 'confirmed'", timeout=30000
    )
    save(page, "order-timeline")


def test_the_demo_as_demo_sh_runs_it(demo: tuple[str, dict[str, str]]) -> None:
    from playwright.sync_api import sync_playwright

    url, env = demo
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(color_scheme="light", viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: print("pageerror:", error))
            log_in(page, url)
            # First, while the crate's order is the only one that can be dead-lettered
            # (shop_simulate's shoppers buy crates too, and succeed once it is fixed).
            check_dead_letter_replay(page, url)
            place_order(page, url)
            check_dashboard(page, url, env)
            check_topology(page, url)
        finally:
            browser.close()
    banner = (ARTIFACTS / "demo.log").read_text()
    assert "RabbitMQ UI:     http://127.0.0.1:15672/" in banner
    assert "management plugin enabled" in banner
