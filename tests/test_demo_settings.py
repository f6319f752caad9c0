"""demo_shop/settings.py reads DATABASE_URL the standard way (dj-database-url)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

SETTINGS = Path(__file__).resolve().parent.parent / "demo_shop" / "settings.py"


def database(monkeypatch: pytest.MonkeyPatch, url: str | None) -> dict[str, Any]:
    """The default DATABASES entry the demo's settings make from ``url``."""
    if url is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", url)
    return dict(runpy.run_path(str(SETTINGS))["DATABASES"]["default"])


def test_a_sqlite_url_is_a_sqlite_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = database(monkeypatch, f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    assert entry["ENGINE"] == "django.db.backends.sqlite3"
    assert entry["NAME"] == str(tmp_path / "shop.sqlite3")
    assert entry["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_a_postgres_url_keeps_every_part(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = database(monkeypatch, "postgres://shop:p%40ss@db.example:5433/shop")
    assert entry["ENGINE"] == "django.db.backends.postgresql"
    parts = (entry["NAME"], entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"])
    assert parts == ("shop", "shop", "p@ss", "db.example", 5433)
    assert "OPTIONS" not in entry and entry["CONN_HEALTH_CHECKS"] is True


def test_without_a_url_the_demo_uses_its_own_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = database(monkeypatch, None)
    assert entry["NAME"] == str(SETTINGS.parent.parent / "db.sqlite3")


def test_with_debug_off_collected_static_files_are_served(settings: Any, tmp_path: Path) -> None:
    """As in docker-compose.yml: DEBUG off, files from collectstatic, served by WhiteNoise."""
    from django.core.management import call_command
    from django.http import HttpResponse
    from django.test import RequestFactory
    from whitenoise.middleware import WhiteNoiseMiddleware

    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--no-input", verbosity=0)
    served = WhiteNoiseMiddleware(get_response=lambda request: HttpResponse(status=404))
    response = served(RequestFactory().get("/static/rabbitbus/charts.js"))
    assert response.status_code == 200
    assert b"rabbitbusCharts" in b"".join(response.streaming_content)
