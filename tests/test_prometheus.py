"""A real Prometheus scrapes a real worker, and reads our dashboard and compose config.

Debian's ``prometheus`` package (scripts/test.sh installs it): the test starts the
server itself on a free loopback port, with its own configuration and storage in a
temporary directory, never the packaged service on :9090. Without the binaries
these tests are skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rabbitbus import publish_many
from rabbitbus.messages import Message
from tests.broker import Broker
from tests.test_grafana_dashboard import DASHBOARD, panels
from tests.test_metrics_process import EXPECTED, WORKLOAD, free_port, wait_for
from tests.workers import ROOT, spawn_worker

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="Debian's prometheus is not installed (apt-get install prometheus)"
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed"
)
#: How long Prometheus gets to start, scrape and answer: generous, the machine is shared.
DEADLINE = 120.0


class Prometheus:
    """A Prometheus server of this test: its port, and its HTTP query API."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:  # noqa: S310
            return response.read().decode()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``/api/v1/query``)."""
        answer = json.loads(self.get("/api/v1/query", query=expr))
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The one value of ``expr`` (None while it has none)."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        return "Ready" in self.get("/-/ready")


@pytest.fixture
def start_prometheus() -> Iterator[Callable[[dict[str, Any]], Prometheus]]:
    """Start Prometheus with a scrape configuration; stopped and its files removed after."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(config: dict[str, Any]) -> Prometheus:
        assert PROMETHEUS is not None
        home = Path(tempfile.mkdtemp(prefix="rabbitbus-prometheus-"))
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with (home / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={home / 'prometheus.yml'}",
                    f"--storage.tsdb.path={home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append((process, home))
        server = Prometheus(port)
        if not wait_for(server.ready, timeout=DEADLINE):
            pytest.fail(f"Prometheus not ready: {(home / 'prometheus.log').read_text()[-2000:]}")
        return server

    yield start
    for process, home in started:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def publish_workload(queue: str) -> None:
    batch = [Message("", queue, {"do": do}) for do, n in WORKLOAD.items() for _ in range(n)]
    assert publish_many(batch).ok


@needs_prometheus
@pytest.mark.timeout(400)
def test_prometheus_sees_a_workers_consumed_messages_rate(
    broker: Broker,
    prefix: str,
    db_path: Path,
    workers: list,
    start_prometheus: Callable[[dict[str, Any]], Prometheus],
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    queue = f"{prefix}.outcomes"
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = spawn_worker(
            prefix,
            db_path,
            "--metrics-port",
            str(metrics_port),
            extra_env={"RABBITBUS_TEST_OUTCOMES": "1"},
            output=output,
        )
    workers.append(worker)
    assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, timeout=60)
    prometheus = start_prometheus(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "worker",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                }
            ],
        }
    )
    every = f'rabbitbus_consumed_messages_total{{queue="{queue}"}}'

    def by_outcome() -> dict[str, int]:
        return {
            sample["metric"]["outcome"]: int(float(sample["value"][1]))
            for sample in prometheus.query(f"sum by (outcome) ({every})")
        }

    def settled(expected: int) -> bool:
        """Whether the workloads' ``expected`` messages are all settled: at least one outcome
        each. Delivery is at least once, so there may be more: a delivery requeued on a
        transient failure is counted "requeued" and then under its next delivery's outcome,
        and a retry copy whose publish was sent again (its confirm late on a loaded machine)
        is delivered, and counted, twice (seen in CI: one message dead-lettered twice)."""
        counts = by_outcome()
        counts.pop("requeued", 0)
        return sum(counts.values()) >= expected

    def settle(expected: int) -> None:
        if not wait_for(lambda: settled(expected), DEADLINE):
            tail = log.read_text()[-3000:]
            raise AssertionError(f"{by_outcome()} is not {expected} settled; worker log:\n{tail}")

    # A counter's first sample is where Prometheus starts counting from: once it has
    # scraped the first workload's counts, a second workload makes the rate.
    per_workload = sum(EXPECTED.values())
    publish_workload(queue)
    settle(per_workload)
    publish_workload(queue)
    settle(2 * per_workload)
    assert wait_for(lambda: (prometheus.value(f"sum(rate({every}[1m]))") or 0) > 0, DEADLINE)

    counts = by_outcome()
    counts.pop("requeued", 0)
    assert set(counts) == set(EXPECTED)
    assert all(counts[outcome] >= 2 * count for outcome, count in EXPECTED.items()), counts
    assert prometheus.value('up{job="worker"}') == 1


@needs_promtool
def test_promtool_accepts_the_compose_scrape_configuration() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(ROOT / "deploy" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel's query as a recording rule (Grafana's ``$__rate_interval`` as 1m)."""
    assert PROMTOOL is not None
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in panels(dashboard) for t in panel["targets"]]
    rules = [
        {"record": f"rabbitbus:dashboard_query:{n}", "expr": e.replace("$__rate_interval", "1m")}
        for n, e in enumerate(exprs)
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
