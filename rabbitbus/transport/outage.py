"""One process's view of whether the broker of a connection alias is reachable.

pika connections belong to threads, but an outage belongs to the process. The
first sign of trouble logs one WARNING saying why: a connection lost (a
forced close, a reset) or a connect that failed. A connect that fails marks
the alias down: one background thread per alias (the probe) then tries again
with capped backoff, logging only at DEBUG, and threads that need a
connection wait for it (up to their own deadline) instead of each running a
reconnect loop of its own. The first connect that succeeds after a loss
(the probe's, or any thread's) logs one INFO. On-commit publishing asks
:attr:`Outage.down` and goes straight to the outbox while the alias is down,
so at most one web request per outage waits for the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("rabbitbus.transport.outage")

#: Longest pause between two probes of a broker that stays down.
PROBE_MAX_DELAY = 2.0


class Outage:
    """The reachability of one alias's broker, shared by every thread of the process.

    ``probe`` opens and closes one connection, raising on failure, and returns the
    node it reached; it runs only on the probe thread.
    """

    def __init__(self, alias: str, probe: Callable[[], str | None]) -> None:
        self.alias = alias
        self.probe = probe
        #: When the current trouble began (a loss or a failed connect); None while all is well.
        self.lost_since: float | None = None
        #: When a connect first failed in the current trouble; None unless the broker is down.
        self.down_since: float | None = None
        #: When the last trouble (now over) began.
        self.last_lost_since = float("-inf")
        #: The last connect failure while down (what ``BrokerUnavailable`` reports).
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._stopped = threading.Event()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def dropped(self, error: BaseException, opened_at: float, node: str = "") -> None:
        """A connection opened at ``opened_at`` (monotonic) to ``node`` was lost; the first
        loss logs, naming the node.

        Other threads find their connections dead only when they next use them,
        maybe after the first has reconnected: a connection opened before the
        last trouble began died in that trouble, which was logged already.
        """
        with self._changed:
            if self.lost_since is None and opened_at < self.last_lost_since:
                logger.debug("Connection %r found lost (%s)", self.alias, why(error))
                return
            first, self.lost_since = self.lost_since is None, self.lost_since or time.monotonic()
        if first:
            logger.warning(
                "Connection %r lost (%s)%s; reconnecting", self.alias, why(error), _on(node)
            )

    def connect_failed(self, error: BaseException) -> None:
        """A connect failed: the broker is down until a connect succeeds; the probe starts."""
        with self._changed:
            self.error = error
            if self.down_since is not None:
                return
            first = self.lost_since is None
            self.down_since = time.monotonic()
            self.lost_since = self.lost_since or self.down_since
        level = logging.WARNING if first else logging.INFO
        logger.log(level, "Broker %r unreachable (%s); waiting for it", self.alias, why(error))
        name = f"rabbitbus-probe-{self.alias}"
        threading.Thread(target=self._probe_until_back, name=name, daemon=True).start()

    def back(self, node: str | None = None) -> None:
        """A connect to ``node`` succeeded: end the trouble, if any, and wake the waiting
        threads; the INFO names the node taken."""
        with self._changed:
            since, self.lost_since, self.down_since, self.error = self.lost_since, None, None, None
            self.last_lost_since = since if since is not None else self.last_lost_since
            self._changed.notify_all()
        if since is not None:
            logger.info(
                "Connection %r re-established after %.1fs%s",
                self.alias, time.monotonic() - since, _on(node),
            )  # fmt: skip

    def wait_up(self, deadline: float) -> bool:
        """Wait until the broker is back or ``deadline`` (monotonic) passes; True if back."""
        with self._changed:
            while self.down_since is not None and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self.down_since is None

    def stop(self) -> None:
        """End the probe (settings changed; the process forgets this outage)."""
        self._stopped.set()

    def _probe_until_back(self) -> None:
        delay = 0.1
        while not self._stopped.wait(delay):
            try:
                node = self.probe()
            except Exception as exc:  # noqa: BLE001 - any failure: try again later
                logger.debug("Broker %r still unreachable (%s)", self.alias, why(exc))
                with self._changed:
                    self.error = exc
                delay = min(PROBE_MAX_DELAY, delay * 2)
            else:
                self.back(node)
                return


def _on(node: str | None) -> str:
    return f" on node {node}" if node else ""


def why(error: BaseException) -> str:
    """The innermost reason behind a driver's connect error, as ``Type: text``.

    pika wraps the socket's error in its connection workflow's errors, and
    those in an ``AMQPConnectionError`` with no text of its own.
    """
    while (inner := _wrapped(error)) is not None:
        error = inner
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _wrapped(error: BaseException) -> BaseException | None:
    nested = getattr(error, "exception", None) or (getattr(error, "exceptions", None) or [None])[-1]
    if isinstance(nested, BaseException):
        return nested
    first = error.args[0] if error.args else None
    return first if isinstance(first, BaseException) else error.__cause__
