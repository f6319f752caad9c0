"""A broker-forced close mid-demo: one WARNING and one INFO per connection, no traceback
(issue 14, "Quiet, uniform logs").

The demo's processes (workers, relay, RPC server, daphne) run with the demo's
``LOGGING`` against this run's vhost; ``rabbitmqctl close_all_connections`` closes
every connection while orders flow. Run with ``pytest --ds=tests.settings_pg``.
"""

from __future__ import annotations

import http.cookiejar
import re
import socket
import urllib.parse
import urllib.request
from collections import Counter

import pytest

from tests.demo.test_flow import checkout, wait_final
from tests.shop_services import ShopServices

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: The demo's format: time, level, logger name, message.
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|CRITICAL) (\S+): ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Shopper:
    """A browser's cookies on the site under daphne: a cart, then the pages that price it."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.open("/")  # the CSRF cookie
        token = next(c.value for c in self.cookies if c.name == "csrftoken")
        form = urllib.parse.urlencode({"quantity": 1, "csrfmiddlewaretoken": token}).encode()
        self.open("/cart/add/RB-MUG/", form)

    def open(self, path: str, data: bytes | None = None) -> None:
        headers = {"Referer": self.site}
        request = urllib.request.Request(self.site + path, data, headers=headers)  # noqa: S310
        with self.opener.open(request, timeout=30) as response:
            assert response.status == 200, path

    def price(self) -> None:
        """Both of daphne's connections: the async cart page, the sync checkout page."""
        self.open("/cart/")
        self.open("/checkout/")


def test_a_forced_close_mid_demo_leaves_one_pair_per_connection_and_no_traceback(
    shop: ShopServices,
) -> None:
    site = shop.serve_web(free_port())
    assert shop.broker.wait_for(lambda: _serves(site), timeout=60), shop.log("web")
    shopper = Shopper(site)
    shopper.price()
    wait_final(shop, checkout({"RB-MUG": 1}))
    shop.broker.close_all_connections()
    # Sync connections notice a close when next used: use every process once more.
    shopper.price()
    wait_final(shop, checkout({"RB-MUG": 1}))
    for name in shop.processes:
        text = shop.log(name)
        assert "Traceback" not in text, (name, text)
        pairs = pairs_by_logger(text)
        assert pairs, (name, text)
        assert all(count == (1, 1) for count in pairs.values()), (name, pairs, text)


def pairs_by_logger(text: str) -> dict[str, tuple[int, int]]:
    """logger -> (WARNING-or-worse lines, "re-established" lines); every line must be in
    the demo's one format."""
    loud: Counter[str] = Counter()
    back: Counter[str] = Counter()
    for line in text.splitlines():
        found = LINE.match(line)
        if found is None:
            continue
        level, logger = found.groups()
        if level != "INFO":
            loud[logger] += 1
        elif "re-established" in line:
            back[logger] += 1
    return {logger: (loud[logger], back[logger]) for logger in loud | back}


def _serves(site: str) -> bool:
    try:
        with urllib.request.urlopen(site + "/", timeout=5):  # noqa: S310 - our own site
            return True
    except OSError:
        return False
