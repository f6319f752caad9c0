"""rabbit_status's text: every column has a header, aligned with its figures."""

from __future__ import annotations

import re

from rabbitbus.monitoring import QueueStats, report


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


def test_the_overview_heads_both_queue_tables() -> None:
    snapshot = report.Overview(
        reachable=True,
        version="3.13",
        source="declares",
        queues=[QueueStats("a", ready=1), QueueStats("a.dlq", ready=0, dead_letter=True)],
        workers=[],
        outbox={},
    )
    text = list(report.lines(snapshot))
    assert text.count(report.header()) == 2
    assert text[text.index("Queues:") + 1] == report.header()
