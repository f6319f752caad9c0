"""docs/grafana/rabbitbus.json asks Prometheus only for metrics rabbitbus exports.

No Grafana here: the dashboard is read as JSON. Every ``rabbitbus_*`` name in every
panel's query must be a series our instruments (rabbitbus.observability.instruments)
expose, with the suffixes prometheus_client adds (``_total`` for counters;
``_bucket``, ``_count``, ``_sum`` for histograms); every instrument shows on some
panel; and every panel is one Grafana can draw. tests/test_prometheus.py has real
Prometheus parse the same queries when it is installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from rabbitbus.observability import instruments

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "rabbitbus.json"
OBSERVABILITY_DOCS = ROOT / "docs" / "observability.md"
METRIC_NAME = re.compile(r"\brabbitbus_[a-z0-9_]+")
#: The series prometheus_client exposes for one instrument of each type.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
PANEL_TYPES = {"timeseries", "stat"}
#: The dashboard's datasource variable: Grafana asks for a Prometheus on import, and
#: provisioning (deploy/grafana) picks the default one.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


def our_instruments() -> list[MetricWrapperBase]:
    return [value for value in vars(instruments).values() if isinstance(value, MetricWrapperBase)]


def exported() -> dict[str, str]:
    """Every series name the instruments expose -> the instrument's base name."""
    return {
        instrument._name + suffix: instrument._name
        for instrument in our_instruments()
        for suffix in SUFFIXES[instrument._type]
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that queries, rows' nested panels included."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queried_names(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Each ``rabbitbus_*`` name in a query -> the titles of the panels using it."""
    found: dict[str, set[str]] = {}
    for panel in panels(dashboard):
        for target in panel["targets"]:
            for name in METRIC_NAME.findall(target["expr"]):
                found.setdefault(name, set()).add(panel["title"])
    return found


def test_the_instruments_expose_what_the_docs_list() -> None:
    """The names checked against are the ones docs/observability.md's table lists."""
    documented = set(
        re.findall(r"^\| `(rabbitbus_[a-z_]+)` \|", OBSERVABILITY_DOCS.read_text(), re.M)
    )
    # The table names a counter by its _total series, a histogram by its base name.
    listed = {i._name + ("_total" if i._type == "counter" else "") for i in our_instruments()}
    assert listed == documented
    names = set(exported())
    assert {"rabbitbus_consumed_messages_total", "rabbitbus_handler_seconds_bucket"} <= names


def test_every_queried_metric_is_one_rabbitbus_exports(dashboard: dict[str, Any]) -> None:
    queried = queried_names(dashboard)
    unknown = {name: titles for name, titles in queried.items() if name not in exported()}
    assert unknown == {}


def test_every_instrument_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    shown = {exported()[name] for name in queried_names(dashboard) if name in exported()}
    assert set(exported().values()) - shown == set()


def test_histogram_quantiles_read_buckets_by_le(dashboard: dict[str, Any]) -> None:
    quantiles = [
        target["expr"]
        for panel in panels(dashboard)
        for target in panel["targets"]
        if "histogram_quantile" in target["expr"]
    ]
    assert len(quantiles) >= 10
    for expr in quantiles:
        assert "_bucket[" in expr and re.search(r"by \(le\b", expr), expr


def test_every_panel_is_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["type"] in PANEL_TYPES, title
        assert panel["datasource"] == DATASOURCE, title
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in "xywh"), title
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_WIDTH, title
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].count("(") == target["expr"].count(")"), title


def test_the_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "rabbitbus" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    assert "id" not in dashboard  # an id would clash with the importing Grafana's own
