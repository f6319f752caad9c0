"""Tests for ``tests.fault_proxy.FaultProxy``, against a local echo server (and once RabbitMQ).

Every wait is bounded: sockets carry timeouts and polling helpers have deadlines.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import pytest

from tests.broker import UPSTREAM
from tests.fault_proxy import FaultProxy

TIMEOUT = 2.0
Connect = Callable[[], socket.socket]


class EchoServer:
    """Echoes every byte back and records, per connection, the bytes it received."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.received: list[bytearray] = []
        self.finished = 0  # connections whose handler has closed its socket
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._spawn(self._accept_loop)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            buf = bytearray()
            with self._lock:
                self._conns.append(conn)
                self.received.append(buf)
            self._spawn(self._serve, conn, buf)

    def _serve(self, conn: socket.socket, buf: bytearray) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.finished += 1

    def close_connections(self) -> None:
        """Send FIN on every connection; each handler then sees EOF and closes its socket."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def stop(self) -> None:
        self._stop.set()
        self.close_connections()
        for thread in self._threads:
            thread.join(TIMEOUT)
        self.listener.close()


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while chunk := sock.recv(65536):
        buf += chunk
    return bytes(buf)


def roundtrip(sock: socket.socket, payload: bytes = b"ping") -> None:
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=echo.address) as proxy:
        yield proxy


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Connect]:
    """Factory of client sockets to the proxy, all closed at teardown."""
    sockets: list[socket.socket] = []

    def factory() -> socket.socket:
        sock = socket.create_connection(proxy.address, timeout=TIMEOUT)
        sockets.append(sock)
        return sock

    yield factory
    for sock in sockets:
        sock.close()


def test_pass_forwards_bytes_both_ways(echo: EchoServer, connect: Connect) -> None:
    sock = connect()
    roundtrip(sock, b"hello")
    big = os.urandom(100_000)
    roundtrip(sock, big)
    assert bytes(echo.received[0]) == b"hello" + big


def test_drop_all_gives_client_eof_and_still_accepts(proxy: FaultProxy, connect: Connect) -> None:
    sock = connect()
    roundtrip(sock)
    proxy.drop_all()
    assert sock.recv(1) == b""
    wait_for(lambda: proxy.stats["active"] == 0)
    roundtrip(connect())


def test_reset_all_gives_client_connection_reset(proxy: FaultProxy, connect: Connect) -> None:
    sock = connect()
    roundtrip(sock)
    proxy.reset_all()
    with pytest.raises(ConnectionResetError):
        sock.recv(1)
    roundtrip(connect())


def test_blackhole_stops_forwarding_and_pass_through_resumes(
    proxy: FaultProxy, connect: Connect
) -> None:
    old = connect()
    roundtrip(old)
    proxy.blackhole()
    new = connect()
    for sock in (old, new):
        sock.sendall(b"lost?")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.settimeout(TIMEOUT)
    proxy.pass_through()
    for sock in (old, new):  # bytes sent during the blackhole may or may not arrive
        sock.sendall(b"again")
        buf = b""
        while not buf.endswith(b"again"):
            buf += sock.recv(64)
        assert buf in (b"again", b"lost?again")


def test_upstream_closed_during_blackhole_closes_client_on_resume(
    proxy: FaultProxy, echo: EchoServer, connect: Connect
) -> None:
    sock = connect()
    roundtrip(sock)
    proxy.blackhole()
    echo.close_connections()
    wait_for(lambda: echo.finished == 1)
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(1)  # still open: the proxy keeps the client side during the blackhole
    sock.settimeout(TIMEOUT)
    proxy.pass_through()
    assert sock.recv(1) == b""


def test_refuse_closes_new_connections_only(proxy: FaultProxy, connect: Connect) -> None:
    existing = connect()
    roundtrip(existing)
    proxy.refuse(True)
    assert connect().recv(1) == b""
    roundtrip(existing)
    proxy.refuse(False)
    roundtrip(connect())
    assert proxy.stats["connections"] == 3


def test_cut_after_up_forwards_exactly_n_bytes(
    proxy: FaultProxy, echo: EchoServer, connect: Connect
) -> None:
    proxy.cut_after(4, direction="up")
    sock = connect()
    sock.sendall(b"0123456789")
    recv_until_eof(sock)  # returns at the proxy's FIN
    wait_for(lambda: echo.finished == 1)
    assert bytes(echo.received[0]) == b"0123"
    proxy.cut_after(None)
    roundtrip(connect(), b"0123456789")


def test_cut_after_down_and_both(proxy: FaultProxy, connect: Connect) -> None:
    proxy.cut_after(3, direction="down")
    sock = connect()
    sock.sendall(b"hello")
    assert recv_until_eof(sock) == b"hel"
    proxy.cut_after(6)  # "both": 4 bytes up, then only 2 of the 4 echoed bytes down
    sock = connect()
    sock.sendall(b"abcd")
    assert recv_until_eof(sock) == b"ab"


def test_cut_next_cuts_only_the_next_connection(proxy: FaultProxy, connect: Connect) -> None:
    proxy.cut_after(2)
    proxy.cut_next(3, direction="down")
    sock = connect()
    sock.sendall(b"hello")
    assert recv_until_eof(sock) == b"hel"
    roundtrip(connect(), b"hello")  # the next one passes, and cut_after was lifted


def test_cut_after_rejects_bad_arguments(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.cut_after(1, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.cut_after(-1)
    with pytest.raises(ValueError):
        proxy.cut_next(-1)


def test_latency_and_bandwidth_still_deliver_in_order(proxy: FaultProxy, connect: Connect) -> None:
    proxy.latency(30)
    sock = connect()
    for i in range(5):
        sock.sendall(b"chunk%d;" % i)
    expected = b"".join(b"chunk%d;" % i for i in range(5))
    assert recv_exactly(sock, len(expected)) == expected
    proxy.latency(0)
    proxy.bandwidth(500_000)
    roundtrip(sock, os.urandom(20_000))
    proxy.bandwidth(None)
    roundtrip(sock)


def test_stats_count_connections_and_bytes(proxy: FaultProxy, connect: Connect) -> None:
    first, second = connect(), connect()
    roundtrip(first, b"12345")
    roundtrip(second, b"123")
    wait_for(lambda: proxy.stats["bytes_down"] == 8)
    assert proxy.stats == {"connections": 2, "active": 2, "bytes_up": 8, "bytes_down": 8}
    first.close()
    wait_for(lambda: proxy.stats["active"] == 1)
    assert proxy.stats["connections"] == 2


def test_unreachable_upstream_closes_client() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead = spare.getsockname()[:2]
    with FaultProxy(upstream=dead) as proxy, socket.create_connection(proxy.address, TIMEOUT) as s:
        assert s.recv(1) == b""
        assert proxy.stats["connections"] == 1


def proxy_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"FaultProxy:{port}"]


def test_context_manager_and_idempotent_start_close(echo: EchoServer) -> None:
    with FaultProxy(upstream=echo.address).start() as proxy:
        assert proxy.start() is proxy
        assert proxy.address == ("127.0.0.1", proxy.port)
        with socket.create_connection(proxy.address, TIMEOUT) as sock:
            roundtrip(sock)
    assert not proxy_threads(proxy.port)
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, TIMEOUT).close()
    with FaultProxy(upstream=echo.address) as proxy:  # __enter__ starts it
        assert proxy_threads(proxy.port)
        with socket.create_connection(proxy.address, TIMEOUT) as sock:
            roundtrip(sock)


def test_close_releases_every_fd() -> None:
    baseline = fd_count()
    FaultProxy().close()  # never started
    echo = EchoServer()
    proxy = FaultProxy(upstream=echo.address).start()
    clients = [socket.create_connection(proxy.address, TIMEOUT) for _ in range(3)]
    for sock in clients:
        roundtrip(sock)
    proxy.blackhole()  # close() must not wait for blackholed pairs
    proxy.latency(50)
    proxy.close()
    proxy.close()
    assert not proxy_threads(proxy.port)
    for sock in clients:
        assert sock.recv(1) == b""
        sock.close()
    echo.stop()
    assert abs(fd_count() - baseline) <= 2


def test_real_amqp_connection_through_proxy() -> None:
    with socket.socket() as probe:
        if probe.connect_ex(UPSTREAM) != 0:
            pytest.skip(f"RabbitMQ is not listening on {UPSTREAM}")
    with FaultProxy(upstream=UPSTREAM) as proxy:
        params = pika.ConnectionParameters(
            host="127.0.0.1",
            port=proxy.port,
            credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1,
            socket_timeout=TIMEOUT,
        )
        first = pika.BlockingConnection(params)
        assert first.channel().is_open
        first.close()
        second = pika.BlockingConnection(params)
        try:
            proxy.drop_all()
            with pytest.raises(pika.exceptions.AMQPConnectionError):
                second.process_data_events(0.5)
        finally:
            if second.is_open:
                second.close()
        assert proxy.stats["connections"] == 2
        assert proxy.stats["bytes_up"] > 0 and proxy.stats["bytes_down"] > 0
