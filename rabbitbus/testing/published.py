"""Records of published messages, their filters and assertion helpers. No I/O.

A :class:`PublishedMessage` is what a broker would have received: exchange,
routing key, the decoded payload, headers and the AMQP properties.
:class:`Published` is a sequence of them with ``filter`` and
``assert_published`` / ``assert_not_published``, whose failure messages list
what was published instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from rabbitbus.exceptions import DecodeError
from rabbitbus.messages import Envelope, decode_body

#: Envelope attributes reported as ``properties``.
PROPERTY_NAMES = (
    "message_id",
    "correlation_id",
    "content_type",
    "type",
    "reply_to",
    "expiration",
    "priority",
    "delivery_mode",
    "app_id",
    "timestamp",
    "mandatory",
)

#: Most records a failure message lists.
SHOWN = 20

_ANY = object()


@dataclass(frozen=True)
class PublishedMessage:
    """One message as the broker would have received it.

    ``kind`` is ``"publish"`` (any publish path, the outbox relay included),
    ``"rpc"`` (an RPC request) or ``"outbox"`` (a row written, not relayed).
    ``payload`` is the decoded body (the raw bytes when it cannot be decoded).
    """

    exchange: str
    routing_key: str
    payload: Any
    headers: dict[str, Any]
    properties: dict[str, Any]
    connection: str = "default"
    kind: str = "publish"
    body: bytes = field(default=b"", repr=False)

    @property
    def message_id(self) -> str | None:
        return self.properties.get("message_id")

    @property
    def correlation_id(self) -> str | None:
        return self.properties.get("correlation_id")

    @property
    def content_type(self) -> str | None:
        return self.properties.get("content_type")

    def describe(self) -> str:
        """One line: where it went and what it carried."""
        payload = _short(self.payload)
        headers = f" headers={_short(self.headers)}" if self.headers else ""
        where = f"{self.exchange or '(default)'} [{self.routing_key}]"
        return f"{self.kind} {where} {payload}{headers}"


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decoded(body: bytes, content_type: str | None) -> Any:
    """``body`` decoded as a consumer would, or the bytes themselves."""
    try:
        return decode_body(body, content_type)
    except DecodeError:
        return body


def from_envelope(envelope: Envelope, connection: str, kind: str = "publish") -> PublishedMessage:
    return PublishedMessage(
        exchange=envelope.exchange,
        routing_key=envelope.routing_key,
        payload=decoded(envelope.body, envelope.content_type),
        headers=dict(envelope.headers),
        properties={name: getattr(envelope, name) for name in PROPERTY_NAMES},
        connection=connection,
        kind=kind,
        body=envelope.body,
    )


def includes(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds ``expected``: dicts by subset (recursively), else equality."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and includes(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


@dataclass(frozen=True)
class Criteria:
    """What ``filter`` and the assertions match on; unset fields match anything."""

    exchange: str | None = None
    routing_key: str | None = None
    kind: str | None = None
    payload: Any = _ANY
    payload_includes: dict[str, Any] | None = None
    headers_include: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def matches(self, message: PublishedMessage) -> bool:
        checks: list[Callable[[], bool]] = [
            lambda: self.exchange is None or message.exchange == self.exchange,
            lambda: self.routing_key is None or message.routing_key == self.routing_key,
            lambda: self.kind is None or message.kind == self.kind,
            lambda: self.payload is _ANY or message.payload == self.payload,
            lambda: (
                self.payload_includes is None or includes(message.payload, self.payload_includes)
            ),
            lambda: self.headers_include is None or includes(message.headers, self.headers_include),
            lambda: includes(message.properties, self.properties),
        ]
        return all(check() for check in checks)

    def describe(self) -> str:
        parts = [
            f"{name}={value!r}"
            for name, value in (
                ("exchange", self.exchange),
                ("routing_key", self.routing_key),
                ("kind", self.kind),
                ("payload_includes", self.payload_includes),
                ("headers_include", self.headers_include),
            )
            if value is not None
        ]
        if self.payload is not _ANY:
            parts.append(f"payload={self.payload!r}")
        parts += [f"{name}={value!r}" for name, value in self.properties.items()]
        return ", ".join(parts) or "anything"


class Published(Sequence[PublishedMessage]):
    """Published messages in publish order, with filters and assertions.

    Criteria (keyword arguments of :meth:`filter` and the assertions):
    ``exchange``, ``routing_key``, ``kind``, ``payload`` (equal),
    ``payload_includes`` (a dict subset of the payload), ``headers_include``,
    and any property (``message_id=...``, ``type=...``, ``correlation_id=...``).
    Without ``kind``, they match what was sent (``"publish"`` and ``"rpc"``): a
    capture's pending outbox rows are looked at only for ``kind="outbox"``.
    """

    def __init__(self, messages: Sequence[PublishedMessage] = ()) -> None:
        self._messages = list(messages)

    def records(self) -> list[PublishedMessage]:
        """Every message; subclasses may gather more first."""
        return self._messages

    @overload
    def __getitem__(self, index: int) -> PublishedMessage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PublishedMessage]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.records()[index]

    def __len__(self) -> int:
        return len(self.records())

    def __iter__(self) -> Iterator[PublishedMessage]:
        return iter(list(self.records()))

    def __repr__(self) -> str:
        return f"<Published {len(self)} messages>"

    def filter(self, **criteria: Any) -> Published:
        """The messages matching ``criteria`` (see the class docstring)."""
        wanted = _criteria(criteria)
        return Published(
            [message for message in self.candidates(wanted) if wanted.matches(message)]
        )

    def candidates(self, wanted: Criteria) -> list[PublishedMessage]:
        """What ``filter`` and the assertions look through for ``wanted``: every message
        here (a capture adds its pending outbox rows when ``kind="outbox"`` is asked for)."""
        return list(self)

    @property
    def payloads(self) -> list[Any]:
        return [message.payload for message in self]

    @property
    def routing_keys(self) -> list[str]:
        return [message.routing_key for message in self]

    def assert_published(self, count: int | None = None, **criteria: Any) -> PublishedMessage:
        """Assert some message matches ``criteria`` (exactly ``count`` of them, if given);
        returns the first match. The failure lists what was published instead."""
        wanted = _criteria(criteria)
        seen = self.candidates(wanted)
        matches = [message for message in seen if wanted.matches(message)]
        if not matches or (count is not None and len(matches) != count):
            expected = "No message" if count is None else f"{len(matches)} messages, not {count},"
            raise AssertionError(
                f"{expected} published matching {wanted.describe()}.\n{summary(seen)}"
            )
        return matches[0]

    def assert_not_published(self, **criteria: Any) -> None:
        """Assert no message matches ``criteria``; the failure lists those that did."""
        wanted = _criteria(criteria)
        matches = [message for message in self.candidates(wanted) if wanted.matches(message)]
        if matches:
            raise AssertionError(
                f"Expected nothing published matching {wanted.describe()}, but:\n{summary(matches)}"
            )

    def summary(self) -> str:
        """What was published, one line each (the first :data:`SHOWN`)."""
        return summary(list(self))


def summary(messages: Sequence[PublishedMessage]) -> str:
    """``messages``, one line each (the first :data:`SHOWN`)."""
    if not messages:
        return "Nothing was published."
    lines = [f"  {n}. {message.describe()}" for n, message in enumerate(messages[:SHOWN], 1)]
    if len(messages) > SHOWN:
        lines.append(f"  ... and {len(messages) - SHOWN} more")
    return f"Published ({len(messages)}):\n" + "\n".join(lines)


def _criteria(raw: dict[str, Any]) -> Criteria:
    known = {
        name: raw.pop(name)
        for name in (
            "exchange",
            "routing_key",
            "kind",
            "payload",
            "payload_includes",
            "headers_include",
        )
        if name in raw
    }
    unknown = set(raw) - set(PROPERTY_NAMES)
    if unknown:
        raise TypeError(f"Unknown criteria {sorted(unknown)}; properties are {PROPERTY_NAMES}")
    return Criteria(**known, properties=raw)
