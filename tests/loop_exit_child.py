"""A one-off event loop that publishes (or calls) across a broker outage, then ends.

Run by tests/test_faults_loop_exit.py as
``python -m tests.loop_exit_child CALL RUNNER STOP_FILE URL QUEUE``: ``CALL`` is
``apublish_many`` (3,000 messages to ``QUEUE``) or ``acall`` (a procedure nobody
serves), ``RUNNER`` is ``asyncio.run`` or ``async_to_sync``.
It repeats the call until ``STOP_FILE`` exists, printing ``returned`` after each
call, then lets the loop end: the process must exit soon after the last call.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import django


async def one_call(call: str, queue: str) -> str:
    """One call; its outcome as a short line (errors are expected during the outage)."""
    from rabbitbus import Message, apublish_many, rpc

    try:
        if call == "acall":
            await rpc.acall("loop_exit.nobody", timeout=1)
            return "answered"
        result = await apublish_many([Message("", queue, {"n": n}) for n in range(3000)])
    except Exception as exc:  # noqa: BLE001 - the outcome is only reported
        return type(exc).__name__
    return f"{len(result.confirmed)} confirmed {len(result.failed)} failed"


async def main(call: str, stop: Path, queue: str) -> None:
    print("started", flush=True)
    while True:
        outcome = await one_call(call, queue)
        print("returned", outcome, flush=True)
        if stop.exists():
            return
        await asyncio.sleep(0.2)


def run() -> None:
    call, runner, stop, url, queue = sys.argv[1:6]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.test import override_settings

    # A long CONNECTION_TIMEOUT: a reconnect attempt to a silent peer stays under way.
    timeouts = {"PUBLISH_TIMEOUT": 2, "RECONNECT_TIMEOUT": 3, "CONNECTION_TIMEOUT": 30}
    override_settings(RABBITBUS={"CONNECTIONS": {"default": {"URL": url, **timeouts}}}).enable()
    if runner == "async_to_sync":
        from asgiref.sync import async_to_sync

        async_to_sync(main)(call, Path(stop), queue)
    else:
        asyncio.run(main(call, Path(stop), queue))
    print("loop ended", flush=True)


if __name__ == "__main__":
    run()
