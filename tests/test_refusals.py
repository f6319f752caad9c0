"""A broker that refuses the login, the vhost or a permission says so (issue 12.7).

Sync and async publishing raise :class:`AccessRefused` at once with RabbitMQ's
reason; a worker keeps retrying (the operator may fix it) and logs the reason.
The password never appears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from django.test import override_settings

import rabbitbus
from rabbitbus import rpc
from rabbitbus.exceptions import AccessRefused, RpcNotSent
from rabbitbus.runtime.service import Runtime
from tests.broker import AMQP_PORT, ctl, unique

PASSWORD = "s3cret-h3-password"  # noqa: S105 - a test user's, checked never to be shown


@pytest.fixture(scope="module")
def user_without_permission() -> Iterator[str]:
    name = unique("rabbitbus-noperm")
    ctl("add_user", name, PASSWORD)
    yield name
    ctl("delete_user", name, check=False)


def url(user: str, password: str, vhost: str) -> str:
    return f"amqp://{user}:{password}@127.0.0.1:{AMQP_PORT}/{vhost}"


def cases(test_vhost: str, user_without_permission: str) -> dict[str, tuple[str, str]]:
    """case -> (URL, what the error must say)."""
    return {
        "wrong password": (
            url("guest", PASSWORD, test_vhost),
            "refused the login of user 'guest' (ACCESS_REFUSED)",
        ),
        "missing vhost": (url("guest", "guest", "no-such-vhost"), "'no-such-vhost'"),
        "no permission": (
            url(user_without_permission, PASSWORD, test_vhost),
            f"user '{user_without_permission}'",
        ),
    }


CASES = ("wrong password", "missing vhost", "no permission")
#: What the sync error says beyond the case's words (pika keeps the broker's reply).
SYNC_DETAIL = {
    "missing vhost": "has no virtual host",
    "no permission": "does not allow user",
}


def settings_for(address: str) -> dict[str, object]:
    return {"CONNECTIONS": {"default": {"URL": address, "RECONNECT_TIMEOUT": 30}}}


@pytest.mark.parametrize("case", CASES)
def test_publish_says_what_rabbitmq_refused(
    case: str, test_vhost: str, user_without_permission: str
) -> None:
    address, words = cases(test_vhost, user_without_permission)[case]
    with override_settings(RABBITBUS=settings_for(address)), pytest.raises(AccessRefused) as caught:
        rabbitbus.publish("amq.topic", "x", {})
    message = str(caught.value)
    assert words in message and SYNC_DETAIL.get(case, "") in message
    assert PASSWORD not in message and "Is the server running" not in message


@pytest.mark.parametrize("case", CASES)
def test_apublish_says_what_rabbitmq_refused(
    case: str, test_vhost: str, user_without_permission: str
) -> None:
    address, words = cases(test_vhost, user_without_permission)[case]
    with override_settings(RABBITBUS=settings_for(address)), pytest.raises(AccessRefused) as caught:
        asyncio.run(rabbitbus.apublish("amq.topic", "x", {}))
    message = str(caught.value)
    assert words in message and PASSWORD not in message


@pytest.mark.parametrize("kind", ["call", "acall"])
@pytest.mark.parametrize("case", CASES)
def test_call_and_acall_say_what_rabbitmq_refused(
    kind: str, case: str, test_vhost: str, user_without_permission: str
) -> None:
    """As publishing does: AccessRefused, not the RpcNotSent of a broker that is away
    (both are a BrokerUnavailable; the request did not leave either way)."""
    address, words = cases(test_vhost, user_without_permission)[case]
    with override_settings(RABBITBUS=settings_for(address)), pytest.raises(AccessRefused) as caught:
        if kind == "call":
            rpc.call("test.aecho", 1, timeout=60)
        else:
            asyncio.run(rpc.acall("test.aecho", 1, timeout=60))
    message = str(caught.value)
    assert not isinstance(caught.value, RpcNotSent)
    assert words in message and PASSWORD not in message


@pytest.mark.parametrize("case", CASES)
def test_a_worker_logs_what_rabbitmq_refused_and_keeps_trying(
    case: str, test_vhost: str, user_without_permission: str, caplog: pytest.LogCaptureFixture
) -> None:
    address, words = cases(test_vhost, user_without_permission)[case]
    caplog.set_level(logging.INFO, logger="rabbitbus.runtime.service")
    with override_settings(RABBITBUS=settings_for(address)):
        runtime = Runtime([])
        asyncio.run(asyncio.wait_for(until_two_attempts(runtime, caplog), 30))
    lines = [r.getMessage() for r in caplog.records if r.name == "rabbitbus.runtime.service"]
    assert len(lines) >= 2 and all(words in line for line in lines), lines
    assert not any(PASSWORD in line for line in lines)


async def until_two_attempts(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    connecting = asyncio.ensure_future(runtime._connect())
    while sum(r.name == "rabbitbus.runtime.service" for r in caplog.records) < 2:
        await asyncio.sleep(0.05)
    runtime.stop()
    assert await connecting is None


def test_a_connection_cut_mid_handshake_is_not_a_refusal() -> None:
    """pika says "probable authentication error" for an EOF during the handshake too."""
    import pika.exceptions

    from rabbitbus.conf import Endpoint
    from rabbitbus.transport.refusals import describe

    endpoint = Endpoint.from_url(url("guest", "guest", "v"))
    cut = pika.exceptions.ProbableAuthenticationError(
        "StreamLostError: ('Transport indicated EOF',)"
    )
    refused = pika.exceptions.ProbableAuthenticationError(
        "ConnectionClosedByBroker: (403) 'ACCESS_REFUSED - Login was refused'"
    )
    assert describe(cut, endpoint) is None
    assert "refused the login of user 'guest'" in str(describe(refused, endpoint))


@pytest.mark.timeout(10)
def test_an_exception_chain_that_loops_is_read_once() -> None:
    """aiormq re-raises the error it stored when a connection is reset, so an error can
    be in its own context: a worker reconnecting after a crash hung here, once per try."""
    import aiormq.exceptions

    from rabbitbus.conf import Endpoint
    from rabbitbus.transport.endpoints import refused_certificate
    from rabbitbus.transport.refusals import chain, describe

    reset = aiormq.exceptions.AMQPConnectionError("Server connection reset")
    retried = aiormq.exceptions.AMQPConnectionError("connect failed")
    retried.__context__, reset.__context__ = reset, retried
    assert list(chain(retried)) == [retried, reset]
    assert describe(retried, Endpoint.from_url(url("guest", "guest", "v"))) is None
    assert refused_certificate(retried) is None
