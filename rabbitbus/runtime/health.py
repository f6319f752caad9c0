"""Worker health: a heartbeat file for orchestrators and a heartbeat row for the admin.

The file is rewritten every ``HEARTBEAT_INTERVAL`` seconds while the runtime
is connected and consuming; ``rabbit_consume --check`` (an exec probe) exits 0
when it is fresh. Each worker also upserts one :class:`WorkerHeartbeat` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from django.db import close_old_connections
from django.utils import timezone

from rabbitbus.conf import settings
from rabbitbus.runtime.service import Runtime

logger = logging.getLogger("rabbitbus.runtime.health")


class Heartbeat:
    """Refreshes the heartbeat file and row of one runtime until cancelled."""

    def __init__(self, runtime: Runtime, kind: str = "consumer") -> None:
        options = settings.worker
        self.runtime = runtime
        self.alias = runtime.connection_settings.alias
        self.kind = kind
        self.interval = float(options.heartbeat_interval)
        self.path = Path(options.heartbeat_file) if options.heartbeat_file else None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = timezone.now()

    async def run(self) -> None:
        """Beat every interval; errors are logged once per beat, never fatal.

        The heartbeat file is removed when the beating stops (a stopped
        worker is not alive, whatever the file's age).
        """
        try:
            while True:
                try:
                    await asyncio.to_thread(self.beat)
                except Exception as exc:  # noqa: BLE001 - health must not kill the worker
                    logger.warning("Heartbeat failed (%s: %s)", type(exc).__name__, exc)
                if not self.runtime.stopping.is_set():
                    # Not while the runtime closes its connections: it would open one again.
                    await self.announce()
                await asyncio.sleep(self.interval)
        finally:
            if self.path is not None:
                self.path.unlink(missing_ok=True)

    async def announce(self) -> None:
        """Publish ``worker.stats`` for the live dashboard (never raises)."""
        from rabbitbus.monitoring import apublish_event

        consumers = [service.name for service in self.runtime.services]
        data = {"worker": self.worker_id, "kind": self.kind, "consumers": consumers}
        await apublish_event("worker.stats", {**data, **self.stats()}, connection=self.alias)

    def stats(self) -> dict[str, int]:
        totals = {"processed": 0, "failed": 0, "retried": 0}
        for service in self.runtime.services:
            for key, value in service.stats().items():
                if key in totals:
                    totals[key] += value
        return totals

    def beat(self) -> None:
        stats = self.stats()
        if self.path is not None and self.runtime.ready:
            self._write_file(stats)
        self._save_row(stats)

    def _write_file(self, stats: dict[str, int]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")  # type: ignore[union-attr]
        temporary.write_text(json.dumps({"worker": self.worker_id, "time": time.time(), **stats}))
        os.replace(temporary, self.path)  # type: ignore[arg-type]

    def _save_row(self, stats: dict[str, int]) -> None:
        from rabbitbus.models import WorkerHeartbeat

        close_old_connections()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "kind": self.kind,
                "consumers": [service.name for service in self.runtime.services],
                "started_at": self.started_at,
                "last_seen": timezone.now(),
                **stats,
            },
        )


async def serve(runtime: Runtime, *, kind: str = "consumer", handle_signals: bool = True) -> None:
    """Run ``runtime`` with its :class:`Heartbeat` until the runtime stops."""
    heartbeat = asyncio.ensure_future(Heartbeat(runtime, kind).run())
    try:
        await runtime.run(handle_signals=handle_signals)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


def check(path: str | None = None) -> tuple[bool, str]:
    """Whether a worker's heartbeat file is fresh (younger than 3 intervals)."""
    options = settings.worker
    target = path or options.heartbeat_file
    if not target:
        return False, "No heartbeat file: set RABBITBUS['WORKER']['HEARTBEAT_FILE']."
    try:
        age = time.time() - Path(target).stat().st_mtime
    except OSError:
        return False, f"No heartbeat at {target}."
    limit = 3 * float(options.heartbeat_interval)
    if age > limit:
        return False, f"Heartbeat at {target} is {age:.0f}s old (limit {limit:.0f}s)."
    return True, f"Worker alive: heartbeat {age:.1f}s old."


def prune_processed(days: float | None = None) -> int:
    """Delete inbox rows older than ``days`` (default PROCESSED_RETENTION_DAYS); return how many."""
    from rabbitbus.models import ProcessedMessage

    keep = settings.worker.processed_retention_days if days is None else days
    cutoff = timezone.now() - timedelta(days=keep)
    deleted, _ = ProcessedMessage.objects.filter(processed_at__lt=cutoff).delete()
    return deleted
