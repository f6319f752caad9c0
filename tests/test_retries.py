"""Retry arithmetic: attempt headers from the wire, backoff tiers, dead-letter headers."""

from __future__ import annotations

from typing import Any

import pytest

from rabbitbus.consuming import retries


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 1),
        (2, 2),
        ("3", 3),
        (b"2", 2),
        ("abc", 1),
        (-5, 1),
        (0, 1),
        (2**70, 5),
        ("9" * 40, 1),
        (True, 1),
        (2.5, 1),
        ([1], 1),
    ],
)
def test_attempt_header_is_clamped_and_validated(raw: Any, expected: int) -> None:
    headers = {} if raw is None else {retries.ATTEMPT: raw}
    assert retries.attempt_of(headers, attempts=5) == expected


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [retries.backoff_ms(n, 0.5, 3) for n in range(1, 6)] == [500, 1000, 2000, 3000, 3000]


def test_a_huge_attempt_number_does_not_overflow_the_backoff() -> None:
    assert retries.backoff_ms(10**6, 1, 60) == 60_000


def test_tiers_are_the_distinct_delays_of_one_policy() -> None:
    assert retries.tiers(6, 0.5, 3) == [500, 1000, 2000, 3000]
    assert retries.tiers(1, 0.5, 3) == []


def test_a_requested_delay_takes_the_nearest_longer_tier_or_the_longest() -> None:
    assert retries.tier_for(0.7, [500, 1000, 2000]) == 1000
    assert retries.tier_for(0, [500, 1000, 2000]) == 500
    assert retries.tier_for(99, [500, 1000, 2000]) == 2000


def test_dead_letter_headers_say_why_and_from_where() -> None:
    headers = retries.dead_letter_headers({"h": 1}, KeyError("k"), 3, ("shop", "order.placed"))
    assert headers == {
        "h": 1,
        retries.ERROR_CLASS: "KeyError",
        retries.ERROR: "'k'",
        retries.ATTEMPTS: 3,
        retries.ORIGINAL_EXCHANGE: "shop",
        retries.ORIGINAL_ROUTING_KEY: "order.placed",
    }


def test_a_long_error_is_truncated_in_headers() -> None:
    headers = retries.dead_letter_headers({}, ValueError("x" * 5000), 1, ("", "q"))
    assert len(headers[retries.ERROR]) == retries.MAX_ERROR_LENGTH


def test_origin_prefers_the_recorded_original_over_the_delay_queue_hop() -> None:
    recorded = retries.retry_headers({}, 2, ("shop", "order.placed"))
    assert retries.origin_of(recorded, "", "q") == ("shop", "order.placed")
    assert retries.origin_of({}, "shop", "k") == ("shop", "k")
