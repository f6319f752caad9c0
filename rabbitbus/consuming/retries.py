"""Retry arithmetic: attempt headers, backoff tiers, dead-letter headers. No I/O.

Retries go through delay queues ``<queue>.retry.<delay_ms>``: classic queues
with ``x-message-ttl`` whose dead-letter exchange is the default exchange and
whose dead-letter routing key is the work queue, so an expired message returns
to work. One queue per delay avoids the head-of-line blocking of per-message
TTL (https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats). Nothing waits
in worker memory, so RabbitMQ's ``consumer_timeout`` never fires for a retry.
"""

from __future__ import annotations

from typing import Any

from rabbitbus.conf.schema import is_int

ATTEMPT = "x-rabbitbus-attempt"
ERROR_CLASS = "x-rabbitbus-error-class"
ERROR = "x-rabbitbus-error"
ATTEMPTS = "x-rabbitbus-attempts"
ORIGINAL_EXCHANGE = "x-rabbitbus-original-exchange"
ORIGINAL_ROUTING_KEY = "x-rabbitbus-original-routing-key"

#: Longest error text copied into a dead letter's headers.
MAX_ERROR_LENGTH = 1000


def attempt_of(headers: dict[str, Any] | None, attempts: int) -> int:
    """The 1-based attempt number of a delivery, clamped to ``1..attempts``.

    The header comes from the wire and may be forged ("abc", -5, 2**70): any
    value that is not a plain integer counts as a first attempt, and values
    past ``attempts`` as the last one, so retries always terminate.
    """
    raw = (headers or {}).get(ATTEMPT)
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if is_int(raw):
        value = raw
    elif isinstance(raw, str) and len(raw) < 20:  # no giant-number parsing from the wire
        try:
            value = int(raw)
        except ValueError:
            value = 1
    else:
        value = 1
    return max(1, min(attempts, value))


def backoff_ms(failed_attempt: int, base: float, cap: float) -> int:
    """Delay in milliseconds after attempt ``failed_attempt`` (1-based) failed."""
    seconds = min(cap, base * 2 ** min(failed_attempt - 1, 62))
    return max(1, int(seconds * 1000))


def tiers(attempts: int, base: float, cap: float) -> list[int]:
    """Every distinct delay (ms) a consumer with this policy can use, ascending."""
    return sorted({backoff_ms(attempt, base, cap) for attempt in range(1, attempts)})


def tier_for(delay: float, available: list[int]) -> int:
    """The smallest tier at least ``delay`` seconds long, else the longest one.

    ``Retry(delay=...)`` may ask for any delay; the message waits in the
    nearest existing delay queue rather than in a queue made on the fly.
    """
    wanted = int(delay * 1000)
    for tier in available:
        if tier >= wanted:
            return tier
    return available[-1]


def retry_queue(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def dead_letter_headers(
    headers: dict[str, Any], error: BaseException | str, attempt: int, origin: tuple[str, str]
) -> dict[str, Any]:
    """Headers of a dead letter: why it died, after how many attempts, from where."""
    error_class = error if isinstance(error, str) else type(error).__qualname__
    text = error_class if isinstance(error, str) else str(error) or error_class
    return {
        **headers,
        ERROR_CLASS: error_class,
        ERROR: text[:MAX_ERROR_LENGTH],
        ATTEMPTS: attempt,
        ORIGINAL_EXCHANGE: origin[0],
        ORIGINAL_ROUTING_KEY: origin[1],
    }


def retry_headers(
    headers: dict[str, Any], next_attempt: int, origin: tuple[str, str]
) -> dict[str, Any]:
    """Headers of a retry copy: its attempt number and where it first came from."""
    return {
        **headers,
        ATTEMPT: next_attempt,
        ORIGINAL_EXCHANGE: origin[0],
        ORIGINAL_ROUTING_KEY: origin[1],
    }


def origin_of(headers: dict[str, Any], exchange: str, routing_key: str) -> tuple[str, str]:
    """Where a message was first published (a retried one comes back via ``""``)."""
    original_exchange = headers.get(ORIGINAL_EXCHANGE)
    original_key = headers.get(ORIGINAL_ROUTING_KEY)
    if isinstance(original_exchange, str) and isinstance(original_key, str):
        return original_exchange, original_key
    return exchange, routing_key
