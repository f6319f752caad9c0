"""A real browser places an order and watches it turn confirmed without reloading."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.shop_services import ShopServices
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, wait_listening

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]


def test_one_click_order_turns_confirmed_live(shop: ShopServices) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = shop.serve_web(port)
    wait_listening(port, shop.processes["web"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: print("pageerror:", error))
            page.goto(f"{url}/")
            page.locator("tr", has_text="Rabbit mug").get_by_role("button").click()
            page.wait_for_url("**/cart/")
            assert page.locator("#quote").is_visible()  # priced over RPC (acall)
            page.click("#to-checkout")
            shop.stop("billing")  # the order waits for its payment while the page is open
            page.click("#place-order")
            page.wait_for_url("**/orders/*/")
            page.wait_for_function("document.getElementById('live').textContent === '(live)'")
            assert page.locator("#status").inner_text() in ("placed", "reserved")
            page.evaluate("window.shopMarker = 'not reloaded'")
            shop.start("billing")
            page.wait_for_function(
                "document.getElementById('status').textContent === 'confirmed'", timeout=30000
            )
            assert page.evaluate("window.shopMarker") == "not reloaded"
            history = page.locator("#history .status-name").all_inner_texts()
            assert history == ["placed", "reserved", "paid", "confirmed"]
            # The timeline filled in live, ending with the invoice the saga heard of.
            page.wait_for_function(
                "document.querySelectorAll('#timeline tbody tr').length === 7", timeout=30000
            )
            last = page.locator("#timeline tbody tr").last.locator("td").all_inner_texts()
            confirmed = ["invoice.issued", "orders", "order confirmed; invoice email enqueued"]
            assert last[2:] == confirmed
            assert last[1].startswith("+") and last[1].endswith(" s")
            # Billing's worker ran the invoice email task; the page polls for its result.
            page.wait_for_function(
                "document.querySelector('#invoice-email .task-status')?.textContent"
                " === 'SUCCESSFUL'",
                timeout=30000,
            )
            assert "sent to " in page.locator("#invoice-email").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "shop-order-confirmed.png"), full_page=True)
            declined_order_shows_what_was_undone(page, url)
            page.screenshot(path=str(ARTIFACTS / "shop-order-cancelled.png"), full_page=True)
        finally:
            browser.close()


def declined_order_shows_what_was_undone(page: Any, url: str) -> None:
    """A declined card: the page turns cancelled, then shows the stock put back, live."""
    page.goto(f"{url}/")
    page.locator("tr", has_text="Rabbit hoodie").get_by_role("button").click()
    page.wait_for_url("**/cart/")
    page.click("#to-checkout")
    page.fill("input[name=card_number]", "4000000000000002")
    page.click("#place-order")
    page.wait_for_url("**/orders/*/")
    try:
        page.wait_for_function(
            "[...document.querySelectorAll('#undone-list li')].some(li => li.textContent"
            ".includes('inventory: put 1 x RB-HOOD back in stock'))",
            timeout=30000,
        )
    except Exception as exc:  # the page as it stands says more than a timeout
        shown = {part: page.locator(part).inner_text() for part in ("#status", "#undone-list")}
        shown["timeline"] = page.locator("#timeline tbody").inner_text()
        raise AssertionError(f"the stock put back never showed: {shown}") from exc
    assert page.locator("#status").inner_text() == "cancelled"
    undo_rows = page.locator("#timeline tbody tr.undo").all_inner_texts()
    assert len(undo_rows) == 1 and "stock.release" in undo_rows[0]
