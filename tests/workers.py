"""Run workers for tests: a runtime in a thread (in-process) or a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from rabbitbus.consuming import worker
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.runtime import health
from rabbitbus.runtime.service import Runtime
from tests.broker import Broker

ROOT = Path(__file__).resolve().parent.parent


class ThreadRuntime:
    """A runtime (and its heartbeat) on its own event loop in a background thread."""

    def __init__(self, make_runtime: Callable[[], Runtime], kind: str = "consumer") -> None:
        self.make_runtime = make_runtime
        self.kind = kind
        self.runtime: Runtime | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runtime = self.make_runtime()
            serving = health.serve(self.runtime, kind=self.kind, handle_signals=False)
            self.loop.run_until_complete(serving)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            _close(self.loop)

    def start(self, broker: Broker) -> Self:
        self.thread.start()
        assert broker.wait_for(lambda: self.ready or self.error, timeout=20), "runtime not ready"
        assert self.error is None, self.error
        return self

    @property
    def ready(self) -> bool:
        return self.runtime is not None and self.runtime.ready

    def stats(self) -> dict[str, Any]:
        assert self.runtime is not None
        return self.runtime.services[0].stats()

    def stop(self, timeout: float = 30) -> None:
        if self.runtime is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.runtime.stop)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "runtime did not stop"
        assert self.error is None, self.error

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ThreadWorker(ThreadRuntime):
    """A consumer runtime for ``specs`` in a background thread."""

    def __init__(self, *specs: ConsumerSpec) -> None:
        self.specs = specs
        super().__init__(lambda: worker.consumer_runtime(specs))


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel leftover tasks, and those their cancellation starts, before the loop goes.

    Leftovers are connections a test's ``connections.forget_all()`` hid from the
    runtime's final ``aclose_all()`` (a server thread outliving one test).
    """
    while pending := asyncio.all_tasks(loop):
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    # As asyncio.run() would: no thread or fd outlives the worker.
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def spawn_worker(
    prefix: str,
    db_path: Path,
    *args: str,
    extra_env: dict[str, str] | None = None,
    output: Any = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``manage.py rabbit_consume`` in a subprocess with tests.settings_worker.

    Its stdout and stderr go to ``output`` (a pipe, or an open file to read while it runs).
    """
    return subprocess.Popen(
        [sys.executable, "manage.py", "rabbit_consume", *args],
        cwd=ROOT,
        env=worker_env(prefix, db_path, extra_env),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def worker_env(prefix: str, db_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
        "RABBITBUS_TEST_WORKER_PREFIX": prefix,
        "RABBITBUS_TEST_DB": str(db_path),
        **(extra or {}),
    }


def migrate(prefix: str, db_path: Path) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=worker_env(prefix, db_path),
        check=True,
        timeout=60,
    )


def spec(queue: str, handler: Any, **options: Any) -> ConsumerSpec:
    """A consumer spec for a test (not added to the global registry)."""
    import inspect

    options.setdefault("backoff", (0.05, 0.2))
    return ConsumerSpec(
        name=options.pop("name", queue),
        handler=handler,
        queue=queue,
        is_async=inspect.iscoroutinefunction(handler),
        **options,
    )


def specs_by_name(*specs: ConsumerSpec) -> Sequence[ConsumerSpec]:
    return specs
