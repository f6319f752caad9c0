"""The demo shop's back office as real processes, for end-to-end tests on PostgreSQL.

The services are what ``scripts/demo.sh`` runs (``demo_shop.processes``): one
``rabbit_consume`` per service (inventory, billing, orders), ``rabbit_rpc`` and
``rabbit_outbox``, each a ``manage.py`` subprocess using ``tests.settings_pg_child`` (the test
database and this run's vhost). Invoices are emailed to files in ``mail_dir``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

from demo_shop.processes import WORKERS
from tests.broker import Broker
from tests.workers import ROOT

#: name -> manage.py arguments: the shop's processes, except that the RPC server
#: serves only the shop's procedure (the test settings register tests.testapp's too)
COMMANDS = {**WORKERS, "rpc": (*WORKERS["rpc"], "catalog.quote")}
ASGI = "demo_shop.asgi:application"
#: name -> the queue whose consumer says the service is up
READY_QUEUES = {
    "inventory": "inventory.orders",
    "billing": "billing.orders",
    "orders": "orders.saga",
    "rpc": "rpc.catalog.quote",
}


class ShopServices:
    """Start, stop, kill and restart the shop's worker processes."""

    def __init__(self, broker: Broker, mail_dir: Path, log_dir: Path) -> None:
        self.broker = broker
        self.mail_dir = mail_dir
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_pg_child",
            "DJANGO_EMAIL_FILE_PATH": str(self.mail_dir),
        }

    def start(self, *names: str) -> None:
        for name in names or tuple(COMMANDS):
            log = (self.log_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "manage.py", *COMMANDS[name]],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for name in names or tuple(COMMANDS):
            self.wait_ready(name)

    def serve_web(self, port: int) -> str:
        """The site under daphne (HTTP and WebSocket) on ``port``; returns its URL."""
        log = (self.log_dir / "web.log").open("ab")
        self.processes["web"] = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return f"http://127.0.0.1:{port}"

    def wait_ready(self, name: str) -> None:
        queue = READY_QUEUES.get(name)
        if queue is None:
            return
        ready = self.broker.wait_for(lambda: self._consumers(queue) > 0, timeout=60)
        assert ready, f"{name} did not start consuming {queue}:\n{self.log(name)}"

    def _consumers(self, queue: str) -> int:
        try:
            return self.broker.consumers(queue)
        except Exception:  # noqa: BLE001 - not declared yet
            return 0

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait; returns the exit code."""
        process = self.processes.pop(name)
        process.send_signal(sig)
        return process.wait(timeout=60)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> int:
        code = self.stop(name, sig)
        self.start(name)
        return code

    def stop_all(self) -> None:
        for name in list(self.processes):
            process = self.processes.pop(name)
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def wait_invoice_tasks(self, order_ids: list[int], timeout: float = 90) -> bool:
        """Wait until the invoice email task of each (confirmed) order has finished:
        the saga enqueues it on confirmation, billing's worker sends it after."""
        from demo_shop.orders.models import Order
        from rabbitbus.models import TaskRecord

        ids = list(Order.objects.filter(pk__in=order_ids).values_list("invoice_task_id", flat=True))
        if len(ids) != len(order_ids) or not all(ids):
            return False

        def done() -> bool:
            finished = TaskRecord.objects.filter(pk__in=ids, finished_at__isnull=False)
            return finished.count() == len(ids)

        return self.broker.wait_for(done, timeout=timeout, interval=0.1)

    def emails(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every email sent so far."""
        found = []
        for path in sorted(self.mail_dir.glob("*.log")):
            for raw in path.read_bytes().split(b"-" * 79 + b"\n"):
                if raw.strip():
                    message = message_from_bytes(raw)
                    found.append((str(message["To"]), str(message["Subject"])))
        return found
