"""The shop ships a favicon: linked from its pages, and /favicon.ico (the admin's) finds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_shop_pages_link_the_shipped_favicon() -> None:
    page = Client().get("/").content.decode()
    assert '<link rel="icon" href="/static/shop/favicon.svg"' in page
    found = finders.find("shop/favicon.svg")
    assert found is not None and "<svg" in Path(found).read_text()


def test_favicon_ico_redirects_to_it_for_pages_that_link_none() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/shop/favicon.svg"
