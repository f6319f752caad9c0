"""A real browser: headless Chromium logs in, opens the dashboard and sees a queue change live."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import Broker
from tests.monitoring_helpers import Shop, shop_topology

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-pw"  # noqa: S105 - a throwaway superuser of a throwaway database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=60)


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "daphne exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("daphne did not start listening")


SERVERS = {
    # How to serve the site on {port}; under WSGI only the page must fall back to polling.
    "asgi": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "tests.browser_asgi:application"],
    "wsgi": ["-m", "tests.wsgi_server", "{port}"],
}
LIVE = {"asgi": "WebSocket", "wsgi": "polling"}


@pytest.fixture(params=["asgi", "wsgi"])
def site_server(
    request: pytest.FixtureRequest, broker: Broker, tmp_path: Path
) -> Iterator[tuple[str, Shop, str]]:
    """The site on a file database: daphne (HTTP and WebSocket), or a WSGI-only server."""
    with shop_topology(broker) as shop:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.browser_settings",
            "RABBITBUS_BROWSER_DB": str(tmp_path / "db.sqlite3"),
            "RABBITBUS_BROWSER_QUEUES": json.dumps(shop.queues_setting()),
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        }
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "createsuperuser", "--no-input", "--username", "root", "--email", "r@x.org")
        port = free_port()
        command = [arg.format(port=port) for arg in SERVERS[request.param]]
        ARTIFACTS.mkdir(exist_ok=True)
        log = (ARTIFACTS / f"server-{request.param}.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_listening(port, server)
            yield f"http://127.0.0.1:{port}", shop, request.param
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_dashboard_shows_a_publish_without_reloading(
    site_server: tuple[str, Shop, str], broker: Broker
) -> None:
    from playwright.sync_api import sync_playwright

    url, shop, kind = site_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: print("console:", message.text))
            page.on("pageerror", lambda error: print("pageerror:", error))
            page.goto(f"{url}/admin/login/?next=/admin/rabbitbus/dashboard/")
            page.fill("#id_username", "root")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/rabbitbus/dashboard/")
            cell = page.locator(f'tr[data-queue="{shop.queue}"] td[data-field="ready"]')
            assert cell.inner_text() == "0"
            live = "([text]) => document.getElementById('rb-live').textContent === text"
            page.wait_for_function(live, arg=[LIVE[kind]], timeout=10000)
            page.evaluate("window.rabbitbusMarker = 'not reloaded'")
            with broker.channel() as channel:
                for _ in range(3):
                    channel.basic_publish(shop.exchange, "order.placed", b"{}")
            page.wait_for_function(
                '([q]) => document.querySelector(`tr[data-queue="${q}"] td[data-field=ready]`)'
                ".textContent === '3'",
                arg=[shop.queue],
                timeout=15000,
            )
            assert page.evaluate("window.rabbitbusMarker") == "not reloaded"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"dashboard-{kind}.png"), full_page=True)
        finally:
            browser.close()
