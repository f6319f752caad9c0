"""Bad arguments to publish and call raise one error, alike sync and async, before anything
is sent: :class:`InvalidArgument`, a ``RabbitBusError`` that is also a ``ValueError`` and a
``TypeError`` (what pika, aiormq or Python raised for them before, each differently)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import rabbitbus
from rabbitbus import rpc
from rabbitbus.exceptions import InvalidArgument, RabbitBusError
from rabbitbus.transport import connections
from tests.broker import Broker
from tests.rpc_support import serving

BAD_TIMEOUTS = [0, -1, "2", math.nan, math.inf, True]
LONG = "k" * 256  # one byte over AMQP's short string


def outcome(kind: str, *args: Any, **kwargs: Any) -> Any:
    """What ``rabbitbus.<kind>`` (or ``rpc.<kind>``) returned or raised."""
    function = getattr(rpc if kind in ("call", "acall") else rabbitbus, kind)

    async def awaited() -> Any:
        try:
            return await function(*args, **kwargs)
        finally:
            await connections.aclose_all()

    try:
        return asyncio.run(awaited()) if kind.startswith("a") else function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - inspected by the test
        return exc


def one(exchange: Any, routing_key: Any) -> Callable[[str], tuple[Any, ...]]:
    """The arguments of ``kind`` (publish or publish_many, sync or async) for one message."""

    def arguments(kind: str) -> tuple[Any, ...]:
        if kind.endswith("_many"):
            return ([rabbitbus.Message(exchange, routing_key, {})],)
        return (exchange, routing_key, {})

    return arguments


PUBLISHES = ["publish", "apublish", "publish_many", "apublish_many"]


def test_invalid_argument_is_a_rabbitbus_value_and_type_error() -> None:
    assert issubclass(InvalidArgument, RabbitBusError)
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(InvalidArgument, TypeError)


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
@pytest.mark.parametrize("kind", PUBLISHES)
def test_a_bad_publish_timeout_is_refused_before_sending(
    kind: str, timeout: object, broker: Broker, exchange: str, queue: str
) -> None:
    error = outcome(kind, *one(exchange, "k")(kind), timeout=timeout)
    assert type(error) is InvalidArgument, repr(error)
    assert repr(timeout) in str(error) and "PUBLISH_TIMEOUT" in str(error)
    assert broker.queue_depth(queue) == 0


@pytest.mark.parametrize("kind", PUBLISHES)
def test_a_publish_timeout_of_none_is_publish_timeout(
    kind: str, broker: Broker, exchange: str, queue: str
) -> None:
    result = outcome(kind, *one(exchange, "k")(kind), timeout=None)
    assert not isinstance(result, Exception), repr(result)
    assert broker.queue_depth(queue) == 1


@pytest.mark.parametrize("expiration", [-1, "5", math.nan])
@pytest.mark.parametrize("kind", PUBLISHES)
def test_a_bad_expiration_is_refused_before_sending(
    kind: str, expiration: object, broker: Broker, exchange: str, queue: str
) -> None:
    message = rabbitbus.Message(exchange, "k", {}, expiration=expiration)  # type: ignore[arg-type]
    arguments = ([message],) if kind.endswith("_many") else (exchange, "k", {})
    options = {} if kind.endswith("_many") else {"expiration": expiration}
    error = outcome(kind, *arguments, **options)
    assert type(error) is InvalidArgument, repr(error)
    assert "expiration must be a non-negative number of seconds" in str(error)
    assert broker.queue_depth(queue) == 0


#: (exchange, routing key, what the error says); ``OURS`` is the test's exchange.
OURS = "{exchange}"
BAD_NAMES = [
    (None, "k", "exchange must be a str, not NoneType"),
    (5, "k", "exchange must be a str, not int"),
    ("x" * 256, "k", "is 256 bytes of UTF-8; AMQP allows at most 255"),
    (OURS, 5, "routing key must be a str, not int"),
    (OURS, b"k", "routing key must be a str, not bytes"),
    (OURS, None, "routing key must be a str, not NoneType"),
    (OURS, LONG, "is 256 bytes of UTF-8; AMQP allows at most 255"),
    (OURS, "\ud800", "is not valid UTF-8"),
]


@pytest.mark.parametrize(("target", "key", "words"), BAD_NAMES)
@pytest.mark.parametrize("kind", PUBLISHES)
def test_a_bad_exchange_or_routing_key_is_refused_alike_sync_and_async(
    kind: str, target: Any, key: Any, words: str, broker: Broker, exchange: str, queue: str
) -> None:
    target = exchange if target == OURS else target
    error = outcome(kind, *one(target, key)(kind))
    assert type(error) is InvalidArgument, repr(error)
    assert words in str(error)
    assert broker.queue_depth(queue) == 0


BAD_PROPERTIES = [
    ({"message_id": 42}, "message_id must be a str, not int"),
    ({"type": LONG}, "is 256 bytes of UTF-8; AMQP allows at most 255"),
    ({"correlation_id": b"c"}, "correlation_id must be a str, not bytes"),
    ({"reply_to": 5}, "reply_to must be a str, not int"),
    ({"priority": 256}, "priority must be a whole number 0-255 or None, not 256"),
    ({"priority": "high"}, "priority must be a whole number 0-255 or None, not 'high'"),
    ({"priority": True}, "priority must be a whole number 0-255 or None, not True"),
]


@pytest.mark.parametrize(("options", "words"), BAD_PROPERTIES)
@pytest.mark.parametrize("kind", PUBLISHES)
def test_a_bad_property_is_refused_alike_sync_and_async(
    kind: str, options: dict[str, Any], words: str, broker: Broker, exchange: str, queue: str
) -> None:
    if kind.endswith("_many"):
        error = outcome(kind, [rabbitbus.Message(exchange, "k", {}, **options)])
    else:
        error = outcome(kind, exchange, "k", {}, **options)
    assert type(error) is InvalidArgument, repr(error)
    assert words in str(error)
    assert broker.queue_depth(queue) == 0


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
@pytest.mark.parametrize("kind", ["call", "acall"])
def test_a_bad_call_timeout_is_refused_alike_by_call_and_acall(kind: str, timeout: object) -> None:
    error = outcome(kind, "test.aecho", 1, timeout=timeout)
    assert type(error) is InvalidArgument, repr(error)
    assert repr(timeout) in str(error) and "the default, 10" in str(error)


@pytest.mark.parametrize("kind", ["call", "acall"])
def test_a_call_timeout_of_none_is_the_default(kind: str) -> None:
    with serving("test.aecho"):
        assert outcome(kind, "test.aecho", 7, timeout=None) == 7


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (None, "procedure name must be a str, not NoneType"),
        (5, "procedure name must be a str, not int"),
        ("p" * 256, "is 256 bytes of UTF-8"),
        ("p" * 252, "queue name 'rpc.pp"),  # rpc. + 252 bytes: one over
    ],
)
@pytest.mark.parametrize("kind", ["call", "acall"])
def test_a_bad_procedure_name_is_refused_alike_by_call_and_acall(
    kind: str, name: Any, words: str
) -> None:
    error = outcome(kind, name, 1, timeout=2)
    assert type(error) is InvalidArgument, repr(error)
    assert words in str(error)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_rabbit_call_reports_a_bad_timeout_as_a_command_error(timeout: str) -> None:
    with pytest.raises(CommandError, match=r"--timeout must be a positive number of seconds"):
        call_command("rabbit_call", "test.aecho", "1", "--timeout", timeout)
