"""A stdlib-only TCP fault-injection proxy for tests (a small Toxiproxy substitute).

One daemon thread owns every socket (a ``selectors`` loop). Control methods may be called
from any thread: they hand their work to it and return once it is applied (after
``drop_all()`` returns the sockets are closed), so tests need no sleeps. When one side of a
pair hits EOF or an error, bytes queued towards the other side are flushed, then both sides
are closed. ``blackhole()`` stops reading and writing but keeps the sockets open: unread
bytes wait in kernel buffers and flow after ``pass_through()`` (an EOF seen then closes the
other side). ``close()`` is bounded, idempotent and closes every socket.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

log = logging.getLogger("rabbitbus.tests.fault_proxy")

Direction = Literal["up", "down", "both"]
_DIRECTIONS = ("up", "down")  # up: client -> upstream, down: upstream -> client
_CHUNK = 65536
_MAX_PENDING = 1 << 20  # stop reading a side while this much is queued towards its peer
_TIMEOUT = 5.0  # upstream connect, control call and join bound
# The broker under test (tests/broker.py says the same; this module stays stdlib-only).
UPSTREAM_PORT = int(os.environ.get("RABBITBUS_TEST_AMQP_PORT", "5672"))
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_PASS = {
    "blackholed": False,
    "refusing": False,
    "latency": 0.0,
    "bandwidth": None,
    "chunk": None,
    "cut": None,
    "cut_next": None,
}


class _Pair:
    """One proxied connection. ``queues[d]`` holds ``[due, bytes]`` chunks to send in ``d``."""

    def __init__(self, client: socket.socket, upstream: socket.socket, cut: tuple | None) -> None:
        self.src = {"up": client, "down": upstream}
        self.dst = {"up": upstream, "down": client}
        self.cut = cut  # (n, counted direction) or None
        self.queues = {d: collections.deque[list]() for d in _DIRECTIONS}
        self.next_due = dict.fromkeys(_DIRECTIONS, 0.0)  # keeps chunks ordered, paces bandwidth
        self.forwarded = dict.fromkeys(_DIRECTIONS, 0)  # bytes queued so far, for cut_after
        self.events: dict[socket.socket, int] = {}  # selector interest currently registered
        self.closing = self.closed = False  # closing: flush the queues, then close


def _cut(n: int | None, direction: Direction) -> tuple[int, Direction] | None:
    if direction not in ("up", "down", "both") or (n is not None and n < 0):
        raise ValueError(f"bad cut_after({n!r}, {direction!r})")
    return None if n is None else (n, direction)


def _close_sock(sock: socket.socket, reset: bool) -> None:
    """Close with an RST if ``reset``, else drain unread input first so that a FIN is sent."""
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.setblocking(False)
            for _ in range(64):  # ends at EOF or at EAGAIN (BlockingIOError)
                if not sock.recv(_CHUNK):
                    break
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """TCP proxy from ``listen`` to ``upstream`` with injectable faults (see module doc)."""

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        upstream: tuple[str, int] = ("127.0.0.1", UPSTREAM_PORT),
    ) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(listen)
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.port = self.address[1]
        self._lock = threading.Lock()
        self._calls: list[tuple[Callable[[], None], threading.Event]] = []
        self._pairs: list[_Pair] = []
        self._counters = {"connections": 0, "bytes_up": 0, "bytes_down": 0}
        self._sel: selectors.BaseSelector | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self._loop_alive = self._stop = self._closed = False
        self._cfg: dict[str, Any] = dict(_PASS)  # latency in s, bandwidth in bytes/s per pair

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``connections`` accepted, ``active`` pairs, ``bytes_up``/``bytes_down``."""
        with self._lock:
            return {**self._counters, "active": len(self._pairs)}

    def start(self) -> FaultProxy:
        """Start the forwarding thread (idempotent) and return ``self``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("FaultProxy is closed")
            if self._thread is None:
                self._sel = selectors.DefaultSelector()
                self._sel.register(self._listener, _READ, "listen")
                self._sel.register(self._wake_r, _READ, "wake")
                self._loop_alive = True
                name = f"FaultProxy:{self.port}"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()
        return self

    def pass_through(self) -> None:
        """Plain forwarding again: ends blackhole, refuse, latency, bandwidth and cut_after."""
        self._set(**_PASS)

    def drop_all(self) -> None:
        """Close both sides of every current pair (FIN); new connections are still accepted."""
        self._call(lambda: self._close_pairs(reset=False))

    def reset_all(self) -> None:
        """Abort every current pair with SO_LINGER(1, 0) so that both sides get an RST."""
        self._call(lambda: self._close_pairs(reset=True))

    def blackhole(self) -> None:
        """Stop forwarding on current and new pairs, keeping their sockets open."""
        self._set(blackholed=True)

    def refuse(self, enabled: bool = True) -> None:
        """While enabled, accept then at once close new connections; existing ones are kept."""
        self._set(refusing=bool(enabled))

    def cut_after(self, n: int | None, direction: Direction = "both") -> None:
        """Each new pair forwards ``n`` bytes counted in ``direction``, then closes both sides."""
        self._set(cut=_cut(n, direction))

    def cut_next(self, n: int, direction: Direction = "both") -> None:
        """Like :meth:`cut_after`, for the next accepted connection only; later ones pass."""
        self._set(cut=None, cut_next=_cut(n, direction))

    def latency(self, ms: float) -> None:
        """Delay every forwarded chunk by ``ms`` milliseconds (0 disables)."""
        self._set(latency=max(ms, 0) / 1000.0)

    def bandwidth(self, bps: int | None, chunk: int | None = None) -> None:
        """Throttle each pair and direction to ``bps`` bytes per second (None or 0 disables),
        forwarded ``chunk`` bytes at a time (by default, a twentieth of a second's worth)."""
        self._set(bandwidth=bps or None, chunk=chunk)

    def close(self) -> None:
        """Stop the thread and close every socket. Idempotent; waits at most a few seconds."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._stop = True
        if self._thread is not None:
            self._wake()
            self._thread.join(_TIMEOUT)
            if self._thread.is_alive():
                log.warning("FaultProxy thread did not stop within %.0fs", _TIMEOUT)
        self._close_all()  # no-op if the thread already did it
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Everything that touches sockets runs on the loop thread.

    def _set(self, **settings: Any) -> None:
        self._call(lambda: self._cfg.update(settings))

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread and wait for it; inline when no loop is running."""
        done = threading.Event()
        with self._lock:
            inline = not self._loop_alive or threading.current_thread() is self._thread
            if not inline:
                self._calls.append((fn, done))
        if inline:
            fn()
            return
        self._wake()
        if not done.wait(_TIMEOUT):
            raise RuntimeError("FaultProxy loop did not answer a control call")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake buffer already means "wake up"
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        assert self._sel is not None
        try:
            while not self._stop:
                self._service_pairs()
                for key, mask in self._sel.select(self._timeout()):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        self._run_calls(alive=True)
                    elif mask & _READ and not key.data[0].closed:
                        self._read(*key.data)
        finally:
            self._run_calls(alive=False)  # later calls run inline
            self._close_all()

    def _run_calls(self, alive: bool) -> None:
        """Run the queued control calls (only release their callers when the loop stops)."""
        with self._lock:
            self._loop_alive = alive
            calls, self._calls = self._calls, []
        for fn, done in calls:
            try:
                if alive:
                    fn()
            finally:
                done.set()

    def _timeout(self) -> float:
        """Seconds until the earliest queued chunk is due (at most 1 s)."""
        due = [q[0][0] for p in self._pairs for q in p.queues.values() if q]
        if self._cfg["blackholed"] or not due:
            return 1.0
        return min(max(min(due) - time.monotonic(), 0.0), 1.0)

    def _service_pairs(self) -> None:
        """Send due chunks, finish closing pairs and update each socket's selector interest."""
        now = time.monotonic()
        for pair in list(self._pairs):
            for direction in () if self._cfg["blackholed"] else _DIRECTIONS:
                self._flush(pair, direction, now)
            if pair.closed:
                continue
            if pair.closing and not any(pair.queues.values()):
                self._close_pair(pair, reset=False)
                continue
            for direction, incoming in (("up", "down"), ("down", "up")):
                mask = 0
                queued = sum(len(chunk) for _due, chunk in pair.queues[direction])
                if not (self._cfg["blackholed"] or pair.closing) and queued < _MAX_PENDING:
                    mask |= _READ
                waiting = pair.queues[incoming]  # still due after _flush: send() hit EAGAIN
                if not self._cfg["blackholed"] and waiting and waiting[0][0] <= now:
                    mask |= _WRITE
                self._set_interest(pair, pair.src[direction], mask, (pair, direction))

    def _set_interest(self, pair: _Pair, sock: socket.socket, mask: int, data: object) -> None:
        assert self._sel is not None
        old = pair.events.get(sock, 0)
        if mask != old:
            if not old:
                self._sel.register(sock, mask, data)
            elif not mask:
                self._sel.unregister(sock)
            else:
                self._sel.modify(sock, mask, data)
            pair.events[sock] = mask

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:  # includes BlockingIOError
            return
        with self._lock:
            self._counters["connections"] += 1
        if self._cfg["refusing"]:
            _close_sock(client, reset=False)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=_TIMEOUT)
        except OSError as exc:
            log.warning("FaultProxy could not connect to %s: %s", self.upstream, exc)
            _close_sock(client, reset=False)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cut = self._cfg["cut_next"] or self._cfg["cut"]
        self._cfg["cut_next"] = None
        pair = _Pair(client, upstream, cut)
        with self._lock:
            self._pairs.append(pair)
        if cut is not None and cut[0] == 0:
            self._close_pair(pair, reset=False)

    def _read(self, pair: _Pair, direction: str) -> None:
        bandwidth = self._cfg["bandwidth"]
        size = min(_CHUNK, self._cfg["chunk"] or max(1, bandwidth // 20)) if bandwidth else _CHUNK
        try:
            data = pair.src[direction].recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("FaultProxy recv failed (%s): closing the pair", exc)
            self._close_pair(pair, reset=False)
            return
        if not data:
            pair.closing = True
            return
        if pair.cut is not None and pair.cut[1] in (direction, "both"):
            limit, counted = pair.cut
            used = sum(pair.forwarded.values()) if counted == "both" else pair.forwarded[direction]
            data = data[: max(limit - used, 0)]
            if used + len(data) >= limit:
                pair.closing = True
        pair.forwarded[direction] += len(data)
        if data:
            due = max(time.monotonic() + self._cfg["latency"], pair.next_due[direction])
            pair.next_due[direction] = due + len(data) / (bandwidth or float("inf"))
            pair.queues[direction].append([due, data])

    def _flush(self, pair: _Pair, direction: str, now: float) -> None:
        queue = pair.queues[direction]
        while queue and queue[0][0] <= now and not pair.closed:
            data = queue[0][1]
            try:
                sent = pair.dst[direction].send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("FaultProxy send failed (%s): closing the pair", exc)
                self._close_pair(pair, reset=False)
                return
            with self._lock:
                self._counters[f"bytes_{direction}"] += sent
            if sent < len(data):
                queue[0][1] = data[sent:]
                return
            queue.popleft()

    def _close_pair(self, pair: _Pair, reset: bool) -> None:
        if not pair.closed:
            pair.closed = True
            for sock in pair.src.values():
                if pair.events.get(sock) and self._sel is not None:
                    self._sel.unregister(sock)
                _close_sock(sock, reset)
            with self._lock:
                self._pairs.remove(pair)

    def _close_pairs(self, reset: bool) -> None:
        for pair in list(self._pairs):
            self._close_pair(pair, reset)

    def _close_all(self) -> None:
        self._close_pairs(reset=False)
        with self._lock:
            sel, self._sel = self._sel, None
        if sel is not None:
            sel.close()
        self._listener.close()
