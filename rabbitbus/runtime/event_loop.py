"""The event loop that ``rabbit_consume`` and ``rabbit_rpc`` run on.

``RABBITBUS['WORKER']['EVENT_LOOP']`` (or the commands' ``--loop``) picks it:

* ``"auto"`` (the default): uvloop when it is installed, else asyncio's own;
* ``"uvloop"``: uvloop (https://github.com/MagicStack/uvloop), a loop on
  libuv; check ``rabbitbus.E036`` reports it missing;
* ``"asyncio"``: the standard library's loop.

uvloop takes less CPU per event-loop iteration and per socket operation; an
RPC server or a consumer spends several iterations on every message, so
latency drops and throughput rises (figures in docs/benchmarks.md). Only
the worker processes are affected: views, the ASGI server and the test
suite's in-process runtimes keep whatever loop they run on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from argparse import ArgumentParser
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rabbitbus.exceptions import ConfigurationError

logger = logging.getLogger("rabbitbus.runtime.event_loop")

T = TypeVar("T")

#: The values of ``EVENT_LOOP`` and ``--loop``.
CHOICES = ("auto", "asyncio", "uvloop")


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve(name: str | None = None) -> str:
    """``"asyncio"`` or ``"uvloop"`` for ``name`` (default: the ``EVENT_LOOP`` setting).

    Raises :class:`ConfigurationError` for an unknown name or a missing uvloop.
    """
    if name is None:
        from rabbitbus.conf import settings

        name = settings.worker.event_loop
    if name not in CHOICES:
        raise ConfigurationError(
            f"Unknown event loop {name!r}: choose one of {', '.join(CHOICES)}."
        )
    if name == "auto":
        return "uvloop" if uvloop_installed() else "asyncio"
    if name == "uvloop" and not uvloop_installed():
        raise ConfigurationError("The uvloop event loop is asked for but not installed.")
    return name


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop factory for ``resolve()``'s answer; ``None`` is asyncio's default."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def add_loop_argument(parser: ArgumentParser) -> None:
    """The ``--loop`` option of the worker commands."""
    parser.add_argument(
        "--loop",
        choices=CHOICES,
        help="Event loop (default: RABBITBUS['WORKER']['EVENT_LOOP'], else auto).",
    )


def run(main: Coroutine[Any, Any, T], loop: str | None = None) -> T:
    """``asyncio.run(main)`` on event loop ``loop`` (default: the setting)."""
    name = resolve(loop)
    logger.info("Event loop: %s", name)
    with asyncio.Runner(loop_factory=factory(name)) as runner:
        return runner.run(main)
