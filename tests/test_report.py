"""rabbit_status's text: every column has a header, aligned with its figures."""

from __future__ import annotations

import re

import pytest

from rabbitbus.monitoring import QueueStats, report
from rabbitbus.monitoring.status import MANAGEMENT_API, NO_RATES


def right_edges(line: str) -> list[int]:
    """Where each whitespace-separated cell ends, after the name column."""
    return [match.end() for match in re.finditer(r"\S+", line)][1:]


def test_each_figure_ends_under_its_header_including_the_rates() -> None:
    queue = QueueStats(
        "orders.saga", ready=12345, unacked=7, consumers=3, publish_rate=1234.5, deliver_rate=0.0
    )
    header, row = report.header(), report.queue_line(queue)
    assert header.split() == ["name", "ready", "unacked", "consumers", "publish", "deliver"]
    assert right_edges(header) == right_edges(row)
    assert row.split()[-2:] == ["1234.5/s", "0.0/s"]


def overview(source: str, note: str = "") -> report.Overview:
    return report.Overview(
        reachable=True,
        version="3.13",
        source=source,
        note=note,
        queues=[QueueStats("a", ready=1), QueueStats("a.dlq", ready=0, dead_letter=True)],
        workers=[],
        outbox={},
    )


@pytest.mark.parametrize("rates", [True, False], ids=["management-api", "declares"])
def test_the_overview_heads_both_queue_tables(rates: bool) -> None:
    text = list(report.lines(overview(MANAGEMENT_API if rates else "passive declare")))
    assert text.count(report.header(rates)) == 2
    assert text[text.index("Queues:") + 1] == report.header(rates)
    assert right_edges(text[text.index("Queues:") + 2]) == right_edges(report.header(rates))


def test_rate_columns_only_with_the_management_api_and_the_note_says_how() -> None:
    """Without the management API there are no rates: no columns of dashes for them."""
    declared = list(report.lines(overview("passive declare", NO_RATES)))
    assert f"Note: {NO_RATES}" in declared
    header = declared[declared.index("Queues:") + 1]
    assert header.split() == ["name", "ready", "unacked", "consumers"]
    assert declared[declared.index("Queues:") + 2].split() == ["a", "1", "-", "-"]
    from_api = list(report.lines(overview(MANAGEMENT_API)))
    assert from_api[from_api.index("Queues:") + 1].split()[-2:] == ["publish", "deliver"]
    assert from_api[from_api.index("Queues:") + 2].split() == ["a", "1", "-", "-", "-", "-"]
