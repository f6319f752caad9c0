"""Consumers and RPC procedures served in-process, on a background thread, for a test.

The same :class:`~rabbitbus.runtime.service.Runtime` as ``rabbit_consume --rpc`` (its services,
reconnection and graceful drain), on its own event loop in a daemon thread. No
heartbeat: a test's worker writes no ``WorkerHeartbeat`` row and publishes no
``worker.stats`` event.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, Self

from rabbitbus import rpc
from rabbitbus.consuming import registry, worker
from rabbitbus.rpc import server as rpc_server
from rabbitbus.runtime.service import Runtime, Service

#: Seconds to wait for the worker to consume, and to drain and stop.
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


def chosen_services(
    consumers: Sequence[str] | None, procedures: Sequence[str] | None
) -> tuple[list[registry.ConsumerSpec], list[Service]]:
    """The consumer specs and RPC services to run: ``None`` is every registered one,
    ``()`` none, else those named (an unknown name raises ``ConfigurationError``)."""
    specs = [] if consumers == () else registry.select(consumers or ())
    if procedures == () or (procedures is None and not rpc.registered()):
        return specs, []
    return specs, list(rpc_server.services(procedures or ()))


class BackgroundWorker:
    """Runs ``consumers`` and ``procedures`` (names; ``None`` for all) until :meth:`stop`.

    Use as a context manager, or :meth:`start` and :meth:`stop`. A handler's
    exception is the handler's business (retried, dead-lettered) as in a real
    worker; a failure of the runtime itself is raised by :meth:`stop`.
    """

    def __init__(
        self,
        consumers: Sequence[str] | None = None,
        procedures: Sequence[str] | None = None,
        *,
        alias: str = "default",
    ) -> None:
        self.specs, self.services = chosen_services(consumers, procedures)
        self.alias = alias
        self.runtime: Runtime | None = None
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="rabbitbus-test-worker", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runtime = worker.consumer_runtime(
                self.specs, alias=self.alias, services=self.services
            )
            self.loop.run_until_complete(self.runtime.run(handle_signals=False))
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            self.error = exc
        finally:
            close_loop(self.loop)

    @property
    def ready(self) -> bool:
        """Whether every service consumes (false again while reconnecting)."""
        return self.runtime is not None and self.runtime.ready

    def stats(self) -> dict[str, dict[str, Any]]:
        """Service name -> its counters (``processed``, ``failed``, ...)."""
        runtime = self.runtime
        return {} if runtime is None else {s.name: s.stats() for s in runtime.services}  # type: ignore[attr-defined]

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        """Start the thread and wait until every service consumes; raises what stopped it."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.ready and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.ready:
            self.stop()
            raise RuntimeError(f"The test worker did not start consuming within {timeout}s.")
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Drain and stop (idempotent); raises the runtime's own failure, if any."""
        if self.thread.is_alive() and self.runtime is not None:
            self.loop.call_soon_threadsafe(self.runtime.stop)
        if self.thread.ident is not None:
            self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"The test worker did not stop within {timeout}s.")
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel leftover tasks (and those their cancelling starts), then close ``loop``."""
    while pending := asyncio.all_tasks(loop):
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
