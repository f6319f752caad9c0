"""What a simulation measured, read from its orders' status history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.management.base import CommandError
from django.db.models import Count

from demo_shop.orders.models import Order, StatusChange, TimelineEntry

Status = Order.Status


@dataclass(frozen=True)
class Figures:
    """A run's outcome. Seconds throughout; ``latencies`` sorted, one per confirmed order."""

    placed: int
    statuses: dict[str, int]
    checkout_seconds: float
    flow_seconds: float
    latencies: list[float] = field(default_factory=list)
    #: Where the time goes: for each message a service handled (``"order.placed by
    #: inventory"``), the sorted seconds from each order's checkout to that handling's commit.
    steps: dict[str, list[float]] = field(default_factory=dict)

    @property
    def final(self) -> int:
        return final_count(self.statuses)

    @property
    def unfinished(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if s not in Order.FINAL and n}

    @property
    def throughput(self) -> float:
        """Final orders per second, from the first checkout to the last final change."""
        return self.final / self.flow_seconds if self.flow_seconds > 0 else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of sorted ``values``."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    return values[math.ceil(p / 100 * len(values)) - 1]


def status_counts(prefix: str) -> dict[str, int]:
    """How many of the run's orders (emails starting ``prefix``) are in each status."""
    rows = (
        Order.objects.filter(email__startswith=prefix)
        .values_list("status")
        .annotate(count=Count("id"))
        .order_by()
    )
    return dict(rows)


def final_count(statuses: dict[str, int]) -> int:
    return sum(statuses.get(status, 0) for status in Order.FINAL)


def collect(prefix: str, placed: int, checkout_seconds: float) -> Figures:
    """The figures of the run whose orders' emails start with ``prefix``."""
    placed_at: dict[int, datetime] = {}
    final_at: dict[int, datetime] = {}
    confirmed: list[int] = []
    changes = StatusChange.objects.filter(
        order__email__startswith=prefix, status__in=[Status.PLACED, *Order.FINAL]
    ).values_list("order_id", "status", "at")
    for order_id, status, at in changes:
        if status == Status.PLACED:
            placed_at[order_id] = at
        else:
            final_at[order_id] = at
            if status == Status.CONFIRMED:
                confirmed.append(order_id)
    latencies = sorted((final_at[o] - placed_at[o]).total_seconds() for o in confirmed)
    flow = (max(final_at.values()) - min(placed_at.values())) if final_at else None
    return Figures(
        placed=placed,
        statuses=status_counts(prefix),
        checkout_seconds=checkout_seconds,
        flow_seconds=flow.total_seconds() if flow else 0.0,
        latencies=latencies,
        steps=steps(prefix, placed_at),
    )


def steps(prefix: str, placed_at: dict[int, datetime]) -> dict[str, list[float]]:
    """Seconds from checkout to each handling on the orders' timelines (the outbox relay's
    lag is in the first ones), by message and service."""
    found: dict[str, list[float]] = {}
    entries = TimelineEntry.objects.filter(order__email__startswith=prefix).values_list(
        "order_id", "message", "service", "at"
    )
    for order_id, message, service, at in entries:
        if order_id in placed_at:
            found.setdefault(f"{message} by {service}", []).append(
                (at - placed_at[order_id]).total_seconds()
            )
    return {step: sorted(seconds) for step, seconds in found.items()}


def describe(figures: Figures, run: str) -> str:
    """The report's lines; ``run`` says what ran (tag, shoppers, how)."""
    checkouts = figures.placed / figures.checkout_seconds if figures.checkout_seconds else 0.0
    unfinished = sum(figures.unfinished.values())
    lines = [
        f"Run {run}.",
        f"Checkouts: {figures.placed} placed in {figures.checkout_seconds:.1f} s "
        f"({checkouts:.1f}/s).",
        f"Final: {figures.statuses.get(Status.CONFIRMED, 0)} confirmed, "
        f"{figures.statuses.get(Status.CANCELLED, 0)} cancelled, {unfinished} not final.",
        f"Throughput: {figures.throughput:.1f} orders/s "
        f"({figures.final} final orders, {figures.flow_seconds:.1f} s from first checkout "
        "to last final).",
        latency_line(figures.latencies),
        *steps_lines(figures.steps),
    ]
    return "\n".join(lines) + "\n"


def steps_lines(found: dict[str, list[float]]) -> list[str]:
    """One line per step, in the order they happen (by median), p50 and p99 from checkout."""
    if not found:
        return []
    order = sorted(found, key=lambda step: (percentile(found[step], 50), step))
    width = max(len(step) for step in order)
    lines = ["Where the time goes (seconds from checkout to each handling, p50 / p99):"]
    for step in order:
        seconds = found[step]
        p50, p99 = percentile(seconds, 50), percentile(seconds, 99)
        lines.append(f"  {step:{width}}  {p50:7.3f} / {p99:7.3f}  ({len(seconds)} handled)")
    return lines


def latency_line(latencies: Sequence[float]) -> str:
    if not latencies:
        return "Checkout to confirmed: no order was confirmed."
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return f"Checkout to confirmed: p50 {p50:.3f} s, p99 {p99:.3f} s, max {latencies[-1]:.3f} s."


def check_complete(figures: Figures, timeout: float) -> None:
    """Raise :class:`CommandError` when some orders are not final (after ``timeout`` s)."""
    unfinished = figures.unfinished
    if unfinished:
        where = ", ".join(f"{n} {status}" for status, n in sorted(unfinished.items()))
        raise CommandError(
            f"{sum(unfinished.values())} of {figures.placed} orders not final "
            f"{timeout:g} s after the last checkout: {where}."
        )
