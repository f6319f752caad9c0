"""A real RabbitMQ for integration tests: a throwaway vhost the project's connections use.

:class:`RabbitBroker` creates a vhost (see :mod:`rabbitbus.testing.vhosts`), points
every ``RABBITBUS["CONNECTIONS"]`` alias at it with ``override_settings``, declares
the project's topology as ``manage.py rabbit_setup`` does, runs workers in-process on
request, and on the way out stops them, closes the connections, restores the settings
and deletes the vhost, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.test import override_settings

from rabbitbus import topology
from rabbitbus.conf import DEFAULTS, mask_url
from rabbitbus.exceptions import BrokerConnectionError, BrokerUnavailable
from rabbitbus.testing.background import BackgroundWorker
from rabbitbus.testing.vhosts import Vhost
from rabbitbus.transport import connections, declare

#: Seconds to wait for the first AMQP connection before calling the broker unreachable.
CONNECT_TIMEOUT = 10.0


def pointed_at(url: str) -> dict[str, Any]:
    """The project's ``RABBITBUS`` with every connection's URL replaced by ``url``."""
    raw = dict(getattr(django_settings, "RABBITBUS", None) or {})
    tls = urlsplit(url).scheme == "amqps"
    replaced = {"URL", "URLS"} if tls else {"URL", "URLS", "TLS"}
    pointed = {}
    for alias, options in (raw.get("CONNECTIONS") or DEFAULTS["CONNECTIONS"]).items():
        kept = {k: v for k, v in options.items() if k not in replaced}
        pointed[alias] = {**kept, "URL": url}
    return {**raw, "CONNECTIONS": pointed}


class RabbitBroker:
    """A throwaway vhost on a real broker, used by rabbitbus while active.

    ``url``: the broker (default ``$RABBITBUS_TEST_BROKER_URL`` or the local one);
    ``management_url``: its management API (see :mod:`rabbitbus.testing.vhosts`);
    ``declare``: declare the project's topology on activation.

    ``with RabbitBroker() as broker:`` creates the vhost and activates it;
    :meth:`create` / :meth:`activated` / :meth:`delete` split that for a vhost shared
    by several tests. Raises :class:`BrokerUnavailable` if the broker cannot be reached.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        management_url: str | None = None,
        declare: bool = True,
    ) -> None:
        self.vhost = Vhost(**({"base_url": url} if url else {}), management_url=management_url)
        self.declare = declare
        self.workers: list[BackgroundWorker] = []
        self._stack: contextlib.ExitStack | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of the vhost (the connections' URL while active)."""
        return self.vhost.url

    @property
    def name(self) -> str:
        """The vhost's name."""
        return self.vhost.name

    # -- the vhost -------------------------------------------------------------

    def create(self) -> Self:
        """Create the vhost (raises :class:`BrokerUnavailable`)."""
        self.vhost.create()
        return self

    def delete(self) -> None:
        """Delete the vhost and all it holds."""
        self.vhost.delete()

    def exists(self) -> bool:
        return self.vhost.exists()

    # -- using it ----------------------------------------------------------------

    @contextlib.contextmanager
    def activated(self, *, purge: bool = False) -> Iterator[Self]:
        """Point the connections at the vhost and declare the topology; undo on exit
        (workers started meanwhile are stopped first). ``purge``: empty the topology's
        queues first (what an earlier user of the vhost left there)."""
        with override_settings(RABBITBUS=pointed_at(self.url)):
            try:
                self.check_connection()
                if self.declare:
                    self.declare_topology()
                if purge:
                    self.purge()
                yield self
            finally:
                self.stop_workers()

    def check_connection(self, alias: str = "default") -> None:
        """Open ``alias``'s connection; raises :class:`BrokerUnavailable` saying where."""
        try:
            connections.get_sync(alias).get(deadline=time.monotonic() + CONNECT_TIMEOUT)
        except BrokerUnavailable:
            raise  # it says where and why
        except BrokerConnectionError as exc:
            raise BrokerUnavailable(
                f"RabbitMQ at {mask_url(self.url)} is unreachable ({exc})."
            ) from exc

    def declare_topology(self, alias: str = "default") -> list[topology.Entity]:
        """Declare every exchange, queue and binding, as ``manage.py rabbit_setup`` does."""
        channel = connections.get_sync(alias).get().channel()
        try:
            return declare.declare(channel, topology.configured())
        finally:
            if channel.is_open:
                channel.close()

    def purge(self, alias: str = "default") -> None:
        """Empty every queue of the project's topology that exists in the vhost."""
        connection = connections.get_sync(alias).get()
        for name in topology.configured().queues:
            channel = connection.channel()
            declare.purge(channel, name)  # False when there is no such queue
            if channel.is_open:
                channel.close()

    def worker(
        self,
        consumers: Sequence[str] | None = None,
        procedures: Sequence[str] | None = None,
        *,
        alias: str = "default",
    ) -> BackgroundWorker:
        """A started in-process worker for ``consumers`` and RPC ``procedures`` (names;
        ``None``: every registered one; ``()``: none); stopped when this deactivates."""
        running = BackgroundWorker(consumers, procedures, alias=alias)
        self.workers.append(running)
        return running.start()

    def stop_workers(self) -> None:
        """Stop every worker started here; raises the first failure after stopping all."""
        failures: list[BaseException] = []
        while self.workers:
            try:
                self.workers.pop().stop()
            except Exception as exc:  # noqa: BLE001 - the others must stop too
                failures.append(exc)
        connections.close_all()
        if failures:
            raise failures[0]

    # -- all of it -------------------------------------------------------------

    def start(self) -> Self:
        """Create the vhost and activate it (the vhost is deleted if activating fails)."""
        with contextlib.ExitStack() as stack:
            self.create()
            stack.callback(self.delete)
            stack.enter_context(self.activated())
            self._stack = stack.pop_all()
        return self

    def stop(self) -> None:
        """Deactivate and delete the vhost (idempotent)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RabbitBrokerMixin:
    """For ``unittest`` / Django ``TestCase``: a :class:`RabbitBroker` per test class.

    Put it before the ``TestCase`` base. ``self.rabbit_broker`` is active for the
    class's tests; ``self.rabbit_worker(...)`` starts a worker stopped after the test.
    ``rabbit_broker_options``: keyword arguments of :class:`RabbitBroker`.
    """

    rabbit_broker_options: ClassVar[dict[str, Any]] = {}
    rabbit_broker: ClassVar[RabbitBroker]

    @classmethod
    def setUpClass(cls) -> None:
        # Before the TestCase's own setup, so that its class-level override_settings
        # apply on top of ours and are undone first.
        cls.rabbit_broker = RabbitBroker(**cls.rabbit_broker_options)
        cls.rabbit_broker.start()
        cls.addClassCleanup(cls.rabbit_broker.stop)  # type: ignore[attr-defined]
        super().setUpClass()  # type: ignore[misc]

    def rabbit_worker(
        self, consumers: Sequence[str] | None = None, procedures: Sequence[str] | None = None
    ) -> BackgroundWorker:
        """A started in-process worker (see :meth:`RabbitBroker.worker`), stopped after
        this test."""
        running = BackgroundWorker(consumers, procedures).start()
        self.addCleanup(running.stop)  # type: ignore[attr-defined]
        return running
