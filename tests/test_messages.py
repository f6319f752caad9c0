"""The envelope and serializers: pure logic, no broker."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import uuid

import pytest
from django.test import override_settings
from django.utils.translation import gettext_lazy
from hypothesis import given, settings
from hypothesis import strategies as st

from rabbitbus import messages, serializers
from rabbitbus.consuming import dispatch, retries
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import DecodeError, MessageTooLarge, RabbitBusError, SerializationError
from rabbitbus.messages import Message
from rabbitbus.monitoring import deadletters


def test_django_types_are_encoded() -> None:
    payload = {
        "when": dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC),
        "price": decimal.Decimal("9.99"),
        "id": uuid.UUID(int=1),
        "label": gettext_lazy("Yes"),
    }
    envelope = messages.build(Message("x", "k", payload))
    assert envelope.body == (
        b'{"when":"2026-11-23T09:30:00Z","price":"9.99",'
        b'"id":"00000000-0000-0000-0000-000000000001","label":"Yes"}'
    )
    assert envelope.content_type == "application/json"


def test_envelope_defaults() -> None:
    envelope = messages.build(Message("x", "k", {}))
    assert uuid.UUID(envelope.message_id).version == 4
    assert envelope.delivery_mode == messages.PERSISTENT
    assert envelope.mandatory is True
    assert envelope.app_id == "rabbitbus-tests"
    assert abs(envelope.timestamp - dt.datetime.now().timestamp()) < 60


def test_options_reach_the_properties() -> None:
    envelope = messages.build(
        Message(
            "x",
            "k",
            1,
            headers={"h": 1},
            message_id="m1",
            type="order.placed",
            persistent=False,
            priority=5,
            expiration=dt.timedelta(seconds=1.5),
            correlation_id="c",
            reply_to="r",
        )
    )
    assert envelope.headers == {"h": 1}
    assert envelope.message_id == "m1"
    assert envelope.type == "order.placed"
    assert envelope.delivery_mode == messages.TRANSIENT
    assert envelope.priority == 5
    assert envelope.expiration == "1500"
    assert (envelope.correlation_id, envelope.reply_to) == ("c", "r")


def test_negative_expiration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        messages.build(Message("x", "k", 1, expiration=-1))


@override_settings(RABBITBUS={"MAX_MESSAGE_SIZE": 1024})
def test_oversize_body_is_refused_before_sending() -> None:
    with pytest.raises(MessageTooLarge, match="MAX_MESSAGE_SIZE") as excinfo:
        messages.build(Message("x", "k", "a" * 2000))
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("payload", [float("nan"), float("inf"), object(), {1j: 1}])
def test_unencodable_payloads_raise_serialization_error(payload: object) -> None:
    with pytest.raises(SerializationError):
        messages.build(Message("x", "k", payload))


def test_round_trip() -> None:
    envelope = messages.build(Message("x", "k", {"a": [1, "é", None]}))
    assert messages.decode_body(envelope.body, envelope.content_type) == {"a": [1, "é", None]}


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        (b"{bad json", "application/json", None),
        (b"", "application/json", None),
        (b"\xff\xfe\x00", "application/json", None),
        (b"NaN", "application/json", None),
        (b'{"a": Infinity}', "application/json", None),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", None),
        (b'{"a": 1}', "text/plain", None),
        (b'{"a": 1}', None, None),
        (b'{"a": 1}', "application/json", "gzip"),
    ],
)
def test_bad_bodies_raise_decode_error(
    body: bytes, content_type: str | None, encoding: str | None
) -> None:
    with pytest.raises(DecodeError):
        messages.decode_body(body, content_type, encoding)


def test_pickle_is_never_unpickled(tmp_path: object) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    body = pickle.dumps(Boom())
    for content_type in ("application/python-pickle", "application/json"):
        with pytest.raises(DecodeError):
            messages.decode_body(body, content_type)


@override_settings(RABBITBUS={"MAX_MESSAGE_SIZE": 16})
def test_oversize_received_body_is_refused() -> None:
    with pytest.raises(DecodeError, match="MAX_MESSAGE_SIZE"):
        messages.decode_body(b'"' + b"a" * 32 + b'"', "application/json")


def test_configured_serializer_is_used() -> None:
    with override_settings(RABBITBUS={"SERIALIZER": "tests.test_messages.UpperSerializer"}):
        serializers.load.cache_clear()
        envelope = messages.build(Message("x", "k", "hi"))
        assert (envelope.body, envelope.content_type) == (b"HI", "text/x-upper")
        assert messages.decode_body(b"HI", "text/x-upper") == "hi"
    serializers.load.cache_clear()


class UpperSerializer:
    content_type = "text/x-upper"

    def dumps(self, payload: str) -> bytes:
        return payload.upper().encode()

    def loads(self, body: bytes) -> str:
        return body.decode().lower()


@settings(max_examples=1000, deadline=None)
@given(
    body=st.binary(max_size=512),
    content_type=st.one_of(
        st.none(), st.sampled_from(["application/json", "text/plain", ""]), st.text(max_size=20)
    ),
    encoding=st.one_of(
        st.none(), st.sampled_from(["gzip", "identity", "utf-8"]), st.text(max_size=10)
    ),
)
def test_fuzzed_bodies_raise_only_decode_error(
    body: bytes, content_type: str | None, encoding: str | None
) -> None:
    try:
        messages.decode_body(body, content_type, encoding)
    except RabbitBusError as exc:
        assert isinstance(exc, DecodeError)


#: What a header value can be once pamqp has decoded a table off the wire.
FIELD_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.binary(max_size=30),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
        st.datetimes(),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
#: The names rabbitbus and RabbitMQ read, and some others.
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "x-rabbitbus-attempt",
            "x-rabbitbus-attempts",
            "x-rabbitbus-error",
            "x-rabbitbus-error-class",
            "x-rabbitbus-original-exchange",
            "x-rabbitbus-original-routing-key",
            "x-death",
            "x-delivery-count",
            "x-first-death-exchange",
            "x-first-death-reason",
        ]
    ),
    st.text(max_size=20),
)


@settings(max_examples=1000, deadline=None)
@given(headers=st.dictionaries(HEADER_NAMES, FIELD_VALUES, max_size=6))
def test_fuzzed_headers_never_break_receiving_retrying_or_the_dead_letter_view(
    headers: dict[str, object],
) -> None:
    """B7/B13: headers come from the wire; whatever they hold, a delivery is received (or
    refused with DecodeError), its retry and dead-letter copies are built, and the admin's
    dead-letter view reads it."""
    spec = ConsumerSpec(name="fuzz", handler=print, queue="fuzz", is_async=False, attempts=5)
    raw = messages.Delivery(
        b"{}", headers, exchange="shop", routing_key="order.placed", message_id="id"
    )
    try:
        message = dispatch.receive(spec, raw)
    except RabbitBusError as exc:
        assert isinstance(exc, DecodeError)
        return
    assert 1 <= message.attempt <= spec.attempts
    origin = (message.exchange, message.routing_key)
    assert all(isinstance(part, str) for part in origin)
    retries.retry_headers(headers, message.attempt + 1, origin)
    retries.dead_letter_headers(headers, RuntimeError("x"), message.attempt, origin)
    letter = deadletters.DeadLetter("id", dict(headers), {}, b"{}")
    assert isinstance(letter.error_class, str) and isinstance(letter.error, str)
    assert letter.attempts is None or isinstance(letter.attempts, int)
    assert letter.origin() is None or all(isinstance(part, str) for part in letter.origin() or ())


def decoded_properties(encoded: bytes) -> dict[str, object]:
    import pika.spec

    properties = pika.spec.BasicProperties()
    properties.decode(encoded)
    return vars(properties)


@pytest.mark.parametrize("headers", [{}, {"a": "b", "n": 3, "traceparent": "00-x"}])
def test_both_transports_send_the_same_properties(headers: dict[str, object]) -> None:
    """pika's and aiormq's properties both come from messages.amqp_properties: on the
    wire they decode to the same values (integers in tables may take other widths)."""
    from rabbitbus.transport import aio_publish, confirms

    envelope = messages.Envelope(
        exchange="x",
        routing_key="k",
        body=b"{}",
        message_id="m1",
        content_type="application/json",
        timestamp=1_700_000_000,
        app_id="app",
        headers=headers,
        type="t",
        priority=5,
        expiration="1000",
        correlation_id="c",
        reply_to="r",
    )
    by_pika = decoded_properties(b"".join(confirms.pika_properties(envelope).encode()))
    by_aiormq = decoded_properties(aio_publish.properties(envelope).marshal())
    assert by_pika == by_aiormq
    assert by_pika["type"] == "t" and by_pika["timestamp"] == 1_700_000_000
