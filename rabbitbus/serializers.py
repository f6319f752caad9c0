"""Body serializers. JSON with DjangoJSONEncoder by default; never pickle.

A serializer is any class with a ``content_type`` attribute and ``dumps`` /
``loads`` methods. Choose one with ``RABBITBUS["SERIALIZER"]`` (an import
string). Decoding picks the serializer by the message's content type and only
knows the configured serializer and JSON: an unknown content type is a
:class:`~rabbitbus.exceptions.DecodeError`, so a pickle payload is never
unpickled.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string

from rabbitbus.exceptions import DecodeError, SerializationError


class Serializer(Protocol):
    content_type: str

    def dumps(self, payload: Any) -> bytes: ...

    def loads(self, body: bytes) -> Any: ...


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JSONSerializer:
    """Compact UTF-8 JSON; datetimes, Decimals, UUIDs and lazy strings welcome.

    NaN and Infinity are refused both ways: they are not JSON, and other
    languages' parsers reject them.
    """

    content_type = "application/json"
    _encoder = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # One decoder, as json.loads keeps one: building one per call is measurable per RPC.
    _decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def dumps(self, payload: Any) -> bytes:
        try:
            return self._encoder.encode(payload).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"Cannot encode payload as JSON: {exc}") from exc

    def loads(self, body: bytes) -> Any:
        try:
            return self._decoder.decode(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # RecursionError: deeply nested input must not escape as a crash.
            raise DecodeError(f"Body is not valid JSON: {type(exc).__name__}") from None


@lru_cache(maxsize=8)
def load(path: str) -> Serializer:
    """The serializer instance for an import string (cached)."""
    return import_string(path)()  # type: ignore[no-any-return]


def default() -> Serializer:
    """The serializer named by ``RABBITBUS["SERIALIZER"]``."""
    from rabbitbus.conf import settings

    return load(settings.SERIALIZER)


def for_content_type(content_type: str | None) -> Serializer:
    """The serializer that decodes ``content_type``, or :class:`DecodeError`."""
    configured = default()
    base = (content_type or "").split(";")[0].strip().lower()
    if base == configured.content_type:
        return configured
    if base == JSONSerializer.content_type:
        return load("rabbitbus.serializers.JSONSerializer")
    raise DecodeError(f"Unsupported content type {content_type!r}")
