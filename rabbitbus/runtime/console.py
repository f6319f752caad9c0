"""What the worker commands tell their operator on stdout, whatever ``LOGGING`` says.

Celery and Dramatiq greet whoever starts a worker; ``rabbit_consume``,
``rabbit_rpc`` and ``rabbit_outbox`` do too: a banner saying what the process
consumes or serves (with prefetch and concurrency), its broker, pid and event
loop; a line each time it connects; and a line at shutdown with what it handled.
Verbosity follows Django's ``-v``: 0 prints nothing, 1 (the default) the banner
and the last line, 2 also one line per message. Logs are untouched: these lines
are for the person at the terminal, logs are for the log pipeline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from rabbitbus.conf import settings
from rabbitbus.runtime import event_loop
from rabbitbus.transport import aio

#: Told of each message a service handled: (service name, outcome, message id).
Observer = Callable[[str, str, "str | None"], None]


class Writer(Protocol):
    def write(self, text: str) -> Any: ...

    def flush(self) -> Any: ...


class Console:
    """Prints greeting, connection, per-message and farewell lines at ``verbosity``."""

    def __init__(self, out: Writer, verbosity: int = 1, loop: str | None = None) -> None:
        self.out = out
        self.verbosity = verbosity
        #: The ``--loop`` asked for (None: the setting), for the banner.
        self.loop = loop
        self.started = time.monotonic()

    def say(self, line: str, level: int = 1) -> None:
        """Write ``line`` if the verbosity is at least ``level``; flushed at once (pipes too)."""
        if self.verbosity >= level:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()

    def greet(self, title: str, work: Iterable[str], *, alias: str, loop: str | None) -> None:
        """The banner: ``title``, one line per item of ``work``, broker, pid and loop."""
        self.say(f"rabbitbus {title}")
        for line in work:
            self.say(f"  {line}")
        details = f"pid {os.getpid()}" + (f", event loop {loop}" if loop else "")
        self.say(f"  broker {broker(alias)}; {details}")
        self.say("  Ctrl-C (SIGTERM) finishes the messages in hand, then stops.")

    def connected(self, server_properties: Mapping[str, Any]) -> None:
        """A line per (re)connection naming the broker node that answered."""
        product = server_properties.get("product", b"RabbitMQ")
        version = server_properties.get("version", b"?")
        node = server_properties.get("cluster_name", b"?")
        self.say(f"Connected to {_text(product)} {_text(version)} on node {_text(node)}.")

    def message(self, service: str, outcome: str, message_id: str | None) -> None:
        """One handled message (shown from ``-v 2``)."""
        self.say(f"{service}: {message_id or '(no message id)'} {outcome}", level=2)

    def farewell(self, what: str, counts: Mapping[str, Mapping[str, int]]) -> None:
        """The shutdown line: how long it ran and what each service handled."""
        handled = "; ".join(f"{name} {_counts(figures)}" for name, figures in counts.items())
        self.say(f"Stopped {what} after {self.uptime()}: {handled}.")

    def uptime(self) -> str:
        """How long since this console was made, as ``1h 02m 03s`` or ``2m 03s``."""
        return _duration(time.monotonic() - self.started)


def run_watched(
    console: Console, runtime: Any, title: str, work: Iterable[str], run: Callable[[], None]
) -> None:
    """Greet, ``run()`` (which serves ``runtime`` until stopped), then say what it handled.

    ``title`` names the process ("consumer worker", "RPC server"), ``work`` is one
    line per thing it consumes or serves; the event loop named is the setting's.
    """
    alias = runtime.connection_settings.alias
    console.greet(title, work, alias=alias, loop=event_loop.resolve(console.loop))
    watch(console, runtime)
    run()
    console.farewell(title, service_counts(runtime.services))


def broker(alias: str) -> str:
    """The broker address(es) of connection ``alias``, passwords masked."""
    endpoints = settings.connection(alias).endpoints
    return ", ".join(str(endpoint) for endpoint in endpoints) + f" (connection {alias!r})"


def watch(console: Console, runtime: Any) -> None:
    """Have ``runtime`` report connections and each service report its messages."""
    runtime.on_connected.append(lambda conn: console.connected(aio.server_properties(conn)))
    for service in runtime.services:
        service.observer = console.message


def service_counts(services: Sequence[Any]) -> dict[str, dict[str, int]]:
    """Each service's non-zero counters (``processed`` always), by service name."""
    return {
        service.name: {
            key: value for key, value in service.stats().items() if value or key == "processed"
        }
        for service in services
    }


def _counts(figures: Mapping[str, int]) -> str:
    return ", ".join(f"{value} {key.replace('_', '-')}" for key, value in figures.items())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
