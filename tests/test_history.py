"""rabbitbus.monitoring.history: the management API's samples as the dashboard's chart series."""

from __future__ import annotations

from typing import Any

from rabbitbus.monitoring.history import queue_history


def details(*samples: tuple[int, float]) -> dict[str, Any]:
    """A ``*_details`` object; samples given oldest first, stored newest first as the API does."""
    return {"samples": [{"timestamp": t, "sample": v} for t, v in reversed(samples)]}


def test_depths_come_oldest_first_with_unacked_beside_ready() -> None:
    row = {
        "messages_ready_details": details((1000, 3), (6000, 5)),
        "messages_unacknowledged_details": details((1000, 1), (6000, 0)),
    }
    assert queue_history(row)["depth"] == [[1000, 3.0, 1.0], [6000, 5.0, 0.0]]


def test_rates_are_counter_differences_per_second() -> None:
    stats = {
        "publish_details": details((0, 100), (5000, 150), (10000, 150)),
        "deliver_get_details": details((0, 90), (5000, 100), (10000, 125)),
    }
    assert queue_history({"message_stats": stats})["rates"] == [
        [5000, 10.0, 2.0],
        [10000, 0.0, 5.0],
    ]


def test_a_counter_reset_is_no_negative_rate() -> None:
    stats = {"publish_details": details((0, 500), (5000, 20))}
    assert queue_history({"message_stats": stats})["rates"] == [[5000, 0.0, 0.0]]


def test_a_queue_without_samples_has_empty_series() -> None:
    assert queue_history({"name": "q"}) == {"depth": [], "rates": []}
