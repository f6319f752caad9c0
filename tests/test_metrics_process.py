"""``/metrics`` over HTTP from real processes: a worker (``rabbit_consume
--metrics-port``) after a known workload, and two web processes in multiprocess mode."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rabbitbus import publish_many, rpc
from rabbitbus.messages import Message
from tests.broker import AMQP_PORT, Broker
from tests.workers import ROOT, spawn_worker, worker_env

#: What each body asks the outcomes consumer (tests/testapp/rabbit.py) to do, and how often.
WORKLOAD = {"ok": 3, "reject": 2, "fail": 2, "retry_once": 1}
#: The outcomes that workload makes (attempts=2: a "fail" is retried once, then dead-lettered).
EXPECTED = {"acked": 4, "rejected": 2, "retried": 3, "dead_lettered": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:  # noqa: S310
        return response.read().decode()


def samples(text: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` whose labels include ``labels``, by their full labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def total(text: str, name: str, **labels: str) -> float:
    return sum(samples(text, name, **labels).values())


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    return False


def by_outcome(text: str, queue: str) -> dict[str, float]:
    found = samples(text, "rabbitbus_consumed_messages_total", queue=queue)
    return {dict(labels)["outcome"]: count for labels, count in found.items()}


def test_a_worker_serves_exact_counts_per_outcome(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    port = free_port()
    queue = f"{prefix}.outcomes"
    process = spawn_worker(
        prefix,
        db_path,
        "--metrics-port",
        str(port),
        "--rpc",
        "test.echo",
        "test.fail",
        extra_env={"RABBITBUS_TEST_OUTCOMES": "1"},
    )
    workers.append(process)
    assert broker.wait_for(lambda: broker.consumers(queue, missing=0) == 1, timeout=60)
    batch = [Message("", queue, {"do": do}) for do, n in WORKLOAD.items() for _ in range(n)]
    assert publish_many(batch).ok
    for n in range(3):
        assert rpc.call("test.echo", n, timeout=10) == {"args": [n], "kwargs": {}}
    for _ in range(2):
        with pytest.raises(rpc.RemoteError):
            rpc.call("test.fail", "no", timeout=10)

    done = sum(EXPECTED.values())
    assert wait_for(lambda: sum(by_outcome(scrape(port), queue).values()) >= done)
    time.sleep(0.5)  # nothing more may come: a second look must find the same counts
    text = scrape(port)
    assert by_outcome(text, queue) == EXPECTED
    assert total(text, "rabbitbus_handler_seconds_count") == done
    # Every retry and dead-letter copy was published through the default exchange, confirmed.
    copies = EXPECTED["retried"] + EXPECTED["dead_lettered"] + EXPECTED["rejected"]
    published = "rabbitbus_published_messages_total"
    assert total(text, published, exchange="amq.default", outcome="confirmed") == copies
    # One confirm timed per confirmed publish, whatever the exchange (a worker also
    # publishes its monitoring events, as often as its heartbeat says).
    confirmed = total(text, published, outcome="confirmed")
    assert confirmed >= copies
    assert total(text, "rabbitbus_publish_confirm_seconds_count") == confirmed
    assert broker.queue_depth(f"{queue}.dlq") == EXPECTED["dead_lettered"] + EXPECTED["rejected"]
    requests = "rabbitbus_rpc_requests_total"
    assert total(text, requests, procedure="test.echo", outcome="ok") == 3
    assert total(text, requests, procedure="test.fail", outcome="error") == 2
    assert total(text, "rabbitbus_rpc_request_seconds_count") == 5
    up = samples(text, "rabbitbus_connection_up", alias="default")
    assert list(up.values()) == [1]  # one node, the one the worker is on
    assert dict(next(iter(up)))["node"] == f"127.0.0.1:{AMQP_PORT}"
    assert total(text, "rabbitbus_reconnects_total") == 0
    process.terminate()
    output, _ = process.communicate(timeout=60)
    assert f"metrics on http://0.0.0.0:{port}/metrics" in output


def test_a_worker_refuses_a_port_it_cannot_bind(
    broker: Broker, prefix: str, db_path: Path, workers: list
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - the worker binds all interfaces
        taken.listen()
        process = spawn_worker(prefix, db_path, "--metrics-port", str(taken.getsockname()[1]))
        workers.append(process)
        output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Cannot serve metrics on 0.0.0.0:" in output


@pytest.fixture
def web_servers(tmp_path: Path) -> Iterator[list[int]]:
    """Two WSGI processes sharing one PROMETHEUS_MULTIPROC_DIR."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_metrics",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.wsgi_server", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    try:
        for port in ports:
            assert wait_for(lambda port=port: scrape(port) is not None), "web server not up"
        yield ports
    finally:
        for server in servers:
            server.terminate()
            server.communicate(timeout=10)


def test_the_view_sums_every_web_process_in_multiprocess_mode(
    web_servers: list[int], exchange: str, queue: str
) -> None:
    first, second = web_servers
    for port, count in ((first, 3), (second, 2)):
        for _ in range(count):
            scrape(port, f"/publish/{exchange}/")
    for port in web_servers:  # whichever process answers, the sum of both
        text = scrape(port)
        published = "rabbitbus_published_messages_total"
        assert total(text, published, exchange=exchange, outcome="confirmed") == 5
        assert total(text, "rabbitbus_publish_confirm_seconds_count") == 5


def serve_command(command: str, port: int, prefix: str, db_path: Path, *args: str) -> Any:
    """``manage.py <command> ... --metrics-port port`` with tests.settings_worker."""
    return subprocess.Popen(
        [sys.executable, "manage.py", command, *args, "--metrics-port", str(port)],
        cwd=ROOT,
        env=worker_env(prefix, db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_an_rpc_server_serves_its_request_counts(prefix: str, db_path: Path, workers: list) -> None:
    port = free_port()
    workers.append(serve_command("rabbit_rpc", port, prefix, db_path, "test.aecho"))
    assert wait_for(lambda: total(scrape(port), "rabbitbus_connection_up") == 1, timeout=60)
    assert [rpc.call("test.aecho", n, timeout=10) for n in range(4)] == [0, 1, 2, 3]
    text = scrape(port)
    assert total(text, "rabbitbus_rpc_requests_total", procedure="test.aecho", outcome="ok") == 4
    assert total(text, "rabbitbus_rpc_request_seconds_count", procedure="test.aecho") == 4


def test_the_outbox_relay_serves_rows_relayed_and_the_backlog(
    prefix: str, db_path: Path, workers: list, exchange: str, queue: str
) -> None:
    enqueue = (
        f"from rabbitbus import outbox\nfor n in range(3): outbox.enqueue({exchange!r}, 'k', n)"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", enqueue],
        cwd=ROOT, env=worker_env(prefix, db_path), check=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    workers.append(serve_command("rabbit_outbox", port, prefix, db_path))
    assert wait_for(lambda: total(scrape(port), "rabbitbus_outbox_relayed_total") == 3, 60)
    assert wait_for(lambda: "rabbitbus_outbox_pending " in scrape(port))
    text = scrape(port)
    assert total(text, "rabbitbus_outbox_pending") == 0
    assert total(text, "rabbitbus_outbox_oldest_pending_seconds") == 0
    assert total(text, "rabbitbus_published_messages_total", exchange=exchange) == 3
