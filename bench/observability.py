"""What the observability hooks cost per message, in microseconds. Not a test.

    .venv/bin/python bench/observability.py [--number 200000]

bench/worker.py measures whole workers with metrics on and off; on a shared machine
its rounds vary more than the hooks cost. This times the hooks alone, in one process
(best of 5 repeats), beside an empty call measured in the same run: per delivery with
metrics on (``metrics.consumed``), per publish with metrics on, and per delivery with
opentelemetry-api installed but no tracer provider (the worker's check and fall-through).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import timeit
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def best(function: object, number: int) -> float:
    """Microseconds per call of ``function``, best of five repeats."""
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def drive(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a coroutine that never suspends, without an event loop's own cost."""
    with contextlib.suppress(StopIteration):
        make().send(None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=200_000)
    number = parser.parse_args().number
    import django

    django.setup()
    from rabbitbus.consuming import dispatch
    from rabbitbus.consuming.registry import ConsumerSpec
    from rabbitbus.messages import Envelope
    from rabbitbus.observability import metrics, traces

    async def noop(message: object) -> None:
        return None

    spec = ConsumerSpec(name="bench", handler=noop, queue="bench", is_async=True)
    outcome = dispatch.Outcome(dispatch.ACK)
    envelope = Envelope("orders", "placed", b"{}", "id", "application/json", 0, None, {})

    async def dispatched() -> dispatch.Outcome:
        return outcome

    async def checked() -> dispatch.Outcome:  # the worker's path with tracing hooks
        if not traces.active():
            return await dispatched()
        raise AssertionError("no provider is configured here")

    empty = best(lambda: None, number)
    metrics.enable()
    t0 = time.perf_counter()
    sent, ok = [envelope], {"id": None}
    rows = [
        ("empty call (reference)", empty),
        ("metrics: one delivery", best(lambda: metrics.consumed(spec, outcome, True, t0), number)),
        ("metrics: one publish", best(lambda: metrics.count_published(sent, ok, t0), number)),
        ("no provider: await dispatch", best(lambda: drive(dispatched), number)),
        ("no provider: hook + dispatch", best(lambda: drive(checked), number)),
    ]
    for name, micros in rows:
        print(f"{name:32} {micros:8.3f} us")
    print(f"tracing hooks with no provider: {rows[4][1] - rows[3][1]:+.3f} us per delivery")


if __name__ == "__main__":
    main()
