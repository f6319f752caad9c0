"""Issue 13, point 4: a slow procedure capped by ``concurrency`` cannot starve a fast one."""

from __future__ import annotations

import threading

import pytest

from rabbitbus import rpc
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.rpc import server as rpc_server
from tests.rpc_support import call_in_thread, serving

LIMIT = 2
SLOW_CALLS = 6
running: list[int] = []
most_at_once = [0]
guard = threading.Lock()
release = threading.Event()


@rpc.procedure("test.limited", concurrency=LIMIT)
def limited() -> str:
    """Slow until the test releases it; records how many run at once."""
    with guard:
        running.append(1)
        most_at_once[0] = max(most_at_once[0], len(running))
    try:
        release.wait(30)
        return "slow"
    finally:
        with guard:
            running.pop()


@rpc.procedure("test.quick")
def quick() -> str:
    return "fast"


def wait_running(count: int) -> bool:
    """Wait (bounded) until ``count`` slow calls run."""
    for _ in range(200):
        with guard:
            if len(running) >= count:
                return True
        release.wait(0.05)
    return False


def test_a_fast_procedure_is_answered_while_the_slow_one_is_saturated() -> None:
    release.clear()
    most_at_once[0] = 0
    with serving("test.limited", "test.quick"):  # --concurrency 10 (the default)
        calls = [call_in_thread("test.limited", timeout=60) for _ in range(SLOW_CALLS)]
        try:
            assert wait_running(LIMIT)
            assert rpc.call("test.quick", timeout=5) == "fast"  # within its timeout
            assert len(running) == LIMIT  # the others wait for a slot, not run
        finally:
            release.set()
            for thread, _ in calls:
                thread.join(60)
    assert most_at_once[0] == LIMIT
    assert [outcome.get("result") for _, outcome in calls] == ["slow"] * SLOW_CALLS


def test_the_server_runs_a_capped_procedure_with_fewer_slots() -> None:
    by_name = {s.proc.name: s for s in rpc_server.services(["test.limited", "test.quick"])}
    assert by_name["test.limited"].concurrency == LIMIT
    assert by_name["test.quick"].concurrency == rpc_server.CONCURRENCY
    assert rpc_server.services(["test.limited"], concurrency=1)[0].concurrency == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_concurrency_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="concurrency must be an int >= 1"):
        rpc.procedure("test.bad", concurrency=bad)  # type: ignore[arg-type]
