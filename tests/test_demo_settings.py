"""demo_shop/settings.py reads DATABASE_URL the standard way (dj-database-url), turns
metrics on with RABBITBUS_METRICS, and sends traces over OTLP only when
OTEL_EXPORTER_OTLP_ENDPOINT says where (docker-compose.yml's observability profile)."""

from __future__ import annotations

import gzip
import http.server
import os
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.broker import AMQP_PORT

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "demo_shop" / "settings.py"


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


def metrics_setting(monkeypatch: pytest.MonkeyPatch, **environ: str) -> Any:
    for name in ("RABBITBUS_METRICS", "RABBITBUS_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))["RABBITBUS"].get("METRICS")


def test_metrics_are_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert metrics_setting(monkeypatch) is None
    assert metrics_setting(monkeypatch, RABBITBUS_METRICS="0") is None


def test_rabbitbus_metrics_turns_them_on_with_a_port_for_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert metrics_setting(monkeypatch, RABBITBUS_METRICS="1") == {"PORT": None}
    on = metrics_setting(monkeypatch, RABBITBUS_METRICS="1", RABBITBUS_METRICS_PORT="9100")
    assert on == {"PORT": 9100}


#: Run in a fresh interpreter: the demo's settings, then what OpenTelemetry modules it loaded.
LOADED_MODULES = """
import sys
import demo_shop.settings
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def run_python(code: str, *args: str, **environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_an_otlp_endpoint_no_opentelemetry_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_python(LOADED_MODULES).strip() == "[]"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    middleware = runpy.run_path(str(SETTINGS))["MIDDLEWARE"]
    assert not any("telemetry" in name for name in middleware)


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps each request's path and decoded spans."""

    received: list[tuple[str, ExportTraceServiceRequest]]

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, ExportTraceServiceRequest.FromString(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, ExportTraceServiceRequest]]]]:
    received: list[tuple[str, ExportTraceServiceRequest]] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(10)


#: A publish from a demo process, then the provider's shutdown (which flushes its spans).
PUBLISH = """
import sys
import django
django.setup()
from opentelemetry import trace
from rabbitbus import publish
from django.conf import settings
publish(sys.argv[3], "demo.traced", {"n": 1})
trace.get_tracer_provider().shutdown()
print(settings.MIDDLEWARE[0])
"""


def test_an_otlp_endpoint_sends_the_demos_spans_there(
    collector: tuple[str, list[tuple[str, ExportTraceServiceRequest]]],
    test_vhost: str,
    exchange: str,
    queue: str,
) -> None:
    endpoint, received = collector
    output = run_python(
        PUBLISH,
        "rabbit_consume",
        "inventory",
        exchange,
        DJANGO_SETTINGS_MODULE="demo_shop.settings",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        RABBITBUS_URL=f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{test_vhost}",
    )
    assert output.strip() == "demo_shop.telemetry.RequestSpanMiddleware"
    [(path, request)] = received
    assert path == "/v1/traces"
    [resource_spans] = request.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "demo_shop-inventory"
    spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
    assert [span.name for span in spans] == [f"publish {exchange}"]
    attributes = {kv.key: kv.value.string_value for kv in spans[0].attributes}
    assert attributes["messaging.system"] == "rabbitmq"
