"""TLS (``amqps://``) for every kind of connection, against a real TLS listener.

The listener is :class:`tests.tls_front.TlsFront` in front of the test broker,
with certificates made by ``openssl`` for this run. What a RabbitMQ operator
gets wrong (a CA the client does not trust, a certificate for another name,
plain AMQP sent to the TLS port) fails quickly with an error that says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

import rabbitbus
from rabbitbus import rpc
from rabbitbus.exceptions import BrokerUnavailable
from rabbitbus.transport import connections
from tests.broker import Broker
from tests.rpc_support import serving
from tests.tls_front import Certificates, TlsFront, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def front(certs: Certificates) -> Iterator[TlsFront]:
    with TlsFront(certs.cert, certs.key) as running:
        yield running


@pytest.fixture(scope="module")
def elsewhere(certs: Certificates) -> Iterator[TlsFront]:
    """A listener whose certificate names ``rabbit.internal`` only."""
    with TlsFront(certs.elsewhere_cert, certs.elsewhere_key) as running:
        yield running


def over_tls(
    port: int, *, host: str = "localhost", scheme: str = "amqps", **tls: Any
) -> override_settings:
    url = f"{scheme}://guest:guest@{host}:{port}/{settings.TEST_VHOST}"
    connection: dict[str, Any] = {"URL": url, "RECONNECT_TIMEOUT": 1, "PUBLISH_TIMEOUT": 5}
    if tls:
        connection["TLS"] = tls
    return override_settings(RABBITBUS={"CONNECTIONS": {"default": connection}})


def test_sync_publish_verifies_the_broker_and_is_delivered(
    broker: Broker, exchange: str, queue: str, front: TlsFront, certs: Certificates
) -> None:
    handshakes = front.handshakes
    with over_tls(front.port, CA_FILE=str(certs.ca)):
        rabbitbus.publish(exchange, "k", {"n": 1})
    assert broker.queue_depth(queue) == 1
    assert front.handshakes == handshakes + 1


async def test_async_publish_verifies_the_broker_and_is_delivered(
    broker: Broker, exchange: str, queue: str, front: TlsFront, certs: Certificates
) -> None:
    handshakes = front.handshakes
    with over_tls(front.port, CA_FILE=str(certs.ca)):
        try:
            await rabbitbus.apublish(exchange, "k", {"n": 1})
        finally:
            await connections.aclose_all()
    assert await asyncio.to_thread(broker.queue_depth, queue) == 1
    assert front.handshakes == handshakes + 1


def test_rpc_over_tls_both_ways(elsewhere: TlsFront, certs: Certificates) -> None:
    """Server (reading requests through its tap), ``call`` and ``acall``, all by address
    with SERVER_HOSTNAME naming the certificate."""
    tls = {"CA_FILE": str(certs.ca), "SERVER_HOSTNAME": "rabbit.internal"}
    handshakes = elsewhere.handshakes
    with (
        over_tls(elsewhere.port, host="127.0.0.1", **tls),
        serving("test.echo_value", "test.aecho"),
    ):
        assert [rpc.call("test.echo_value", n, timeout=5) for n in range(20)] == list(range(20))

        async def calls() -> list[Any]:
            try:
                return await asyncio.gather(
                    *(rpc.acall("test.aecho", n, timeout=5) for n in range(20))
                )
            finally:
                await connections.aclose_all()

        assert asyncio.run(calls()) == list(range(20))
    assert elsewhere.handshakes >= handshakes + 3  # the server, call's and acall's connections


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_server_hostname_names_the_certificate_to_expect(
    broker: Broker, exchange: str, queue: str, elsewhere: TlsFront, certs: Certificates, kind: str
) -> None:
    """Connecting by address to a broker whose certificate names it otherwise."""
    tls = {"CA_FILE": str(certs.ca), "SERVER_HOSTNAME": "rabbit.internal"}
    with over_tls(elsewhere.port, host="127.0.0.1", **tls):
        publish(kind, exchange)
    assert broker.queue_depth(queue) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_broker_signed_by_an_unknown_ca_is_refused_saying_why(
    broker: Broker,
    exchange: str,
    queue: str,
    front: TlsFront,
    certs: Certificates,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with over_tls(front.port, CA_FILE=str(certs.other_ca)):
        error = refused(kind, exchange)
    assert "certificate verify failed" in str(error)
    assert "TLS" in str(error)
    assert broker.queue_depth(queue) == 0
    assert_not_retried(caplog)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_certificate_for_another_name_is_refused_saying_why(
    broker: Broker,
    exchange: str,
    queue: str,
    elsewhere: TlsFront,
    certs: Certificates,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with over_tls(elsewhere.port, host="127.0.0.1", CA_FILE=str(certs.ca)):
        error = refused(kind, exchange)
    assert "127.0.0.1" in str(error) and "SERVER_HOSTNAME" in str(error)
    assert broker.queue_depth(queue) == 0
    assert_not_retried(caplog)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_plain_amqp_sent_to_the_tls_port_fails_within_the_reconnect_window(
    exchange: str, front: TlsFront, kind: str
) -> None:
    with over_tls(front.port, scheme="amqp"):
        refused(kind, exchange)


def assert_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A certificate the client refuses is a setting to fix: no reconnect window is spent."""
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("rabbitbus")]
    assert not [m for m in ours if "retrying" in m or "resending" in m], ours


def publish(kind: str, exchange: str) -> None:
    if kind == "sync":
        rabbitbus.publish(exchange, "k", {"n": 1})
        return

    async def apublish() -> None:
        try:
            await rabbitbus.apublish(exchange, "k", {"n": 1})
        finally:
            await connections.aclose_all()

    asyncio.run(apublish())


def refused(kind: str, exchange: str) -> BrokerUnavailable:
    """The error ``publish`` raises, within the reconnect window (1 s) and some slack."""
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        publish(kind, exchange)
    assert time.monotonic() - started < 1 + 5
    return raised.value
