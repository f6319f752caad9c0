"""Every RABBITBUS configuration mistake, as a Django system check.

The validators are pure functions over the raw setting; ``conf`` and
``topology`` call the same functions and raise on the first error, so a
mistake reads the same in ``manage.py check`` and at run time. Each id is
stable and has a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.core.checks import CheckMessage, register
from django.utils.module_loading import import_string

from rabbitbus.checks.base import error as _e
from rabbitbus.checks.base import unknown_keys as _unknown_keys
from rabbitbus.checks.base import warning as _w
from rabbitbus.checks.connections import connection_errors
from rabbitbus.conf import (
    DEFAULTS,
    BindingOptions,
    ExchangeOptions,
    ManagementSettings,
    MonitoringSettings,
    QueueOptions,
    WorkerSettings,
    defaults,
    is_int,
    is_number,
    keys,
    numbers,
)
from rabbitbus.runtime import event_loop

TOP_LEVEL_KEYS = frozenset(DEFAULTS)
EXCHANGE_KEYS = keys(ExchangeOptions)
QUEUE_KEYS = keys(QueueOptions)
BINDING_KEYS = keys(BindingOptions)
WORKER_KEYS = keys(WorkerSettings)
MANAGEMENT_KEYS = keys(ManagementSettings)
MONITORING_KEYS = keys(MonitoringSettings)
EXCHANGE_TYPES = frozenset({"direct", "topic", "fanout", "headers"})
QUEUE_TYPES = frozenset({"classic", "quorum"})
BROKER_MAX_MESSAGE_SIZE = 128 * 1024 * 1024
EXCHANGE_DEFAULTS = defaults(ExchangeOptions)
QUEUE_DEFAULTS = defaults(QueueOptions)
BINDING_DEFAULTS = defaults(BindingOptions)
WORKER_DEFAULTS = defaults(WorkerSettings)
WORKER_NUMBERS = numbers(WorkerSettings)


# -- topology --------------------------------------------------------------


def _exchange_errors(name: str, raw: Any) -> list[CheckMessage]:
    where = f"RABBITBUS['EXCHANGES'][{name!r}]"
    if isinstance(raw, str):
        raw = {"TYPE": raw}
    if not isinstance(raw, dict):
        return [_e("E020", f"{where} must be a dict or an exchange type.", "e.g. 'topic'")]
    errors = _unknown_keys(raw, EXCHANGE_KEYS, where)
    kind = raw.get("TYPE", EXCHANGE_DEFAULTS["TYPE"])
    if not isinstance(kind, str) or kind not in EXCHANGE_TYPES:
        errors.append(
            _e(
                "E020",
                f"{where} has an unknown TYPE.",
                f"One of {', '.join(sorted(EXCHANGE_TYPES))}.",
            )
        )
    return errors


def _binding_errors(queue: str, bindings: Any, exchanges: dict[str, Any]) -> list[CheckMessage]:
    where = f"RABBITBUS['QUEUES'][{queue!r}]['BINDINGS']"
    hint = "A list of (exchange, routing_key) pairs or {'EXCHANGE': ..., 'ROUTING_KEY': ...}."
    if not isinstance(bindings, list | tuple):
        return [_e("E025", f"{where} must be a list.", hint)]
    errors: list[CheckMessage] = []
    for raw in bindings:
        binding = raw
        if isinstance(raw, dict):
            errors += _unknown_keys(raw, BINDING_KEYS, f"{where} binding {raw!r}")
            binding = (raw.get("EXCHANGE"), raw.get("ROUTING_KEY", BINDING_DEFAULTS["ROUTING_KEY"]))
        if not (
            isinstance(binding, list | tuple)
            and len(binding) == 2
            and all(isinstance(part, str) for part in binding)
        ):
            errors.append(_e("E025", f"{where} has a malformed binding {raw!r}.", hint))
            continue
        exchange = binding[0]
        if exchange not in exchanges and not exchange.startswith("amq."):
            errors.append(
                _e(
                    "E024",
                    f"{where} binds to exchange {exchange!r}, which is not declared.",
                    "Add it to RABBITBUS['EXCHANGES'].",
                )
            )
    return errors


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _name_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _count_or_none(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _arguments(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


#: What each typed ``QUEUES[name]`` key must hold (E021), and the test of a good value.
QUEUE_VALUES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "DURABLE": ("True or False", _flag),
    "AUTO_DELETE": ("True or False", _flag),
    "EXCLUSIVE": ("True or False", _flag),
    "ARGUMENTS": ("a dict of argument names to values", _arguments),
    "DEAD_LETTER_EXCHANGE": ("an exchange name or None", _name_or_none),
    "DEAD_LETTER_ROUTING_KEY": ("a routing key or None", _name_or_none),
    "DELIVERY_LIMIT": ("a whole number >= 0 or None", _count_or_none),
    "MESSAGE_TTL": ("milliseconds, a whole number >= 0, or None", _count_or_none),
    "MAX_LENGTH": ("a whole number >= 0 or None", _count_or_none),
}


def _queue_errors(name: str, raw: Any, exchanges: dict[str, Any]) -> list[CheckMessage]:
    where = f"RABBITBUS['QUEUES'][{name!r}]"
    if not isinstance(raw, dict):
        return [_e("E021", f"{where} must be a dict.", "e.g. {'TYPE': 'quorum'}")]
    errors = _unknown_keys(raw, QUEUE_KEYS, where)
    for key, (expected, good) in QUEUE_VALUES.items():
        if key in raw and not good(raw[key]):
            hint = "docs/settings.md lists each QUEUES key."
            errors.append(
                _e("E021", f"{where}[{key!r}] must be {expected}, not {raw[key]!r}.", hint)
            )
    kind = raw.get("TYPE", QUEUE_DEFAULTS["TYPE"])
    if not isinstance(kind, str) or kind not in QUEUE_TYPES:
        errors.append(_e("E021", f"{where} has an unknown TYPE.", "'quorum' or 'classic'."))
    if kind == "quorum" and (
        raw.get("DURABLE") is False or raw.get("EXCLUSIVE") or raw.get("AUTO_DELETE")
    ):
        errors.append(
            _e("E022", f"{where} is a quorum queue: it must be durable.", "Or use TYPE 'classic'.")
        )
    if raw.get("DELIVERY_LIMIT") is not None:
        arguments = raw.get("ARGUMENTS", QUEUE_DEFAULTS["ARGUMENTS"])
        if not raw.get("DEAD_LETTER_EXCHANGE") and not (
            _arguments(arguments) and "x-dead-letter-exchange" in arguments
        ):
            errors.append(
                _e(
                    "E023",
                    f"{where} sets DELIVERY_LIMIT without DEAD_LETTER_EXCHANGE.",
                    "Messages past the limit would be dropped: name a dead-letter exchange.",
                )
            )
        if kind == "classic":
            errors.append(
                _w(
                    "W003",
                    f"{where} sets DELIVERY_LIMIT on a classic queue; RabbitMQ ignores it.",
                    "Use a quorum queue, or rely on rabbitbus retries.",
                )
            )
    errors += _binding_errors(name, raw.get("BINDINGS", QUEUE_DEFAULTS["BINDINGS"]), exchanges)
    return errors


def topology_errors(exchanges: Any, queues: Any) -> list[CheckMessage]:
    """Problems with ``EXCHANGES`` and ``QUEUES``."""
    errors: list[CheckMessage] = []
    if not isinstance(exchanges, dict):
        return [_e("E020", "RABBITBUS['EXCHANGES'] must be a dict.", "Name -> options.")]
    if not isinstance(queues, dict):
        return [_e("E021", "RABBITBUS['QUEUES'] must be a dict.", "Name -> options.")]
    for name, raw in exchanges.items():
        errors += _exchange_errors(name, raw)
    for name, raw in queues.items():
        errors += _queue_errors(name, raw, exchanges)
    return errors


# -- the whole setting -----------------------------------------------------


def _serializer_errors(path: Any) -> list[CheckMessage]:
    hint = "A dotted path to a class with content_type, dumps() and loads()."
    try:
        serializer = import_string(path)
    except (AttributeError, ImportError, TypeError, ValueError):  # AttributeError: not a str
        return [_e("E010", f"RABBITBUS['SERIALIZER'] {path!r} cannot be imported.", hint)]
    if not all(hasattr(serializer, name) for name in ("content_type", "dumps", "loads")):
        return [_e("E010", f"RABBITBUS['SERIALIZER'] {path!r} is not a serializer.", hint)]
    return []


def _size_errors(size: Any) -> list[CheckMessage]:
    if not is_int(size) or not 0 < size <= BROKER_MAX_MESSAGE_SIZE:
        return [
            _e(
                "E011",
                "RABBITBUS['MAX_MESSAGE_SIZE'] must be a positive number of bytes up to 128 MiB.",
                "The default is 1 MiB; RabbitMQ refuses bodies over 128 MiB.",
            )
        ]
    return []


def setting_errors(raw: Any) -> list[CheckMessage]:
    """Every problem with the whole ``RABBITBUS`` setting."""
    if not isinstance(raw, dict):
        return [_e("E001", "RABBITBUS must be a dict.", "See the README's quick start.")]
    errors = _unknown_keys(raw, TOP_LEVEL_KEYS, "RABBITBUS")
    connections = raw.get("CONNECTIONS", DEFAULTS["CONNECTIONS"])
    if not isinstance(connections, dict) or "default" not in connections:
        errors.append(
            _e(
                "E003",
                "RABBITBUS['CONNECTIONS'] must be a dict with a 'default' alias.",
                "e.g. {'default': {'URL': 'amqp://guest:guest@127.0.0.1:5672/'}}",
            )
        )
        connections = {}
    for alias, options in connections.items():
        errors += connection_errors(alias, options)
    errors += _serializer_errors(raw.get("SERIALIZER", DEFAULTS["SERIALIZER"]))
    errors += _size_errors(raw.get("MAX_MESSAGE_SIZE", DEFAULTS["MAX_MESSAGE_SIZE"]))
    if not isinstance(raw.get("APP_ID", DEFAULTS["APP_ID"]), str):
        errors.append(_e("E013", "RABBITBUS['APP_ID'] must be a string.", "e.g. 'shop'"))
    if not isinstance(raw.get("FAST_PATHS", DEFAULTS["FAST_PATHS"]), bool):
        errors.append(_e("E014", "RABBITBUS['FAST_PATHS'] must be True or False.", "e.g. True"))
    errors += topology_errors(
        raw.get("EXCHANGES", DEFAULTS["EXCHANGES"]), raw.get("QUEUES", DEFAULTS["QUEUES"])
    )
    errors += _rpc_errors(raw.get("RPC_REPLY_TO_PREFIXES", DEFAULTS["RPC_REPLY_TO_PREFIXES"]))
    errors += worker_errors(raw.get("WORKER", DEFAULTS["WORKER"]))
    return errors


def worker_errors(raw: Any) -> list[CheckMessage]:
    """Problems with ``RABBITBUS['WORKER']`` (ids E030-E033, E035-E036)."""
    if not isinstance(raw, dict):
        return [_e("E030", "RABBITBUS['WORKER'] must be a dict.", "e.g. {'GRACE_PERIOD': 30}")]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - WORKER_KEYS)
    if unknown:
        hint = f"Valid keys: {', '.join(sorted(WORKER_KEYS))}."
        errors.append(
            _e("E031", f"Unknown key(s) {', '.join(unknown)} in RABBITBUS['WORKER'].", hint)
        )
    for key in WORKER_NUMBERS:
        value = raw.get(key, 1)
        if not is_number(value) or value <= 0:
            errors.append(
                _e(
                    "E032",
                    f"RABBITBUS['WORKER']['{key}'] must be a positive number.",
                    "Seconds or days.",
                )
            )
    if not isinstance(raw.get("HEARTBEAT_FILE"), (str, os.PathLike, type(None))):
        errors.append(
            _e(
                "E033",
                "RABBITBUS['WORKER']['HEARTBEAT_FILE'] must be a path or None.",
                "e.g. '/tmp/worker.alive'",
            )
        )
    return errors + _event_loop_errors(raw.get("EVENT_LOOP", WORKER_DEFAULTS["EVENT_LOOP"]))


def _event_loop_errors(name: Any) -> list[CheckMessage]:
    if name not in event_loop.CHOICES:
        return [
            _e(
                "E035",
                "RABBITBUS['WORKER']['EVENT_LOOP'] must be 'auto', 'asyncio' or 'uvloop'.",
                "'auto' runs workers on uvloop when it is installed, else on asyncio's loop.",
            )
        ]
    if name == "uvloop" and not event_loop.uvloop_installed():
        return [
            _e(
                "E036",
                "RABBITBUS['WORKER']['EVENT_LOOP'] is 'uvloop' but uvloop is not installed.",
                "pip install uvloop, or use 'auto' (uvloop when installed) or 'asyncio'.",
            )
        ]
    return []


def _rpc_errors(prefixes: Any) -> list[CheckMessage]:
    if (
        isinstance(prefixes, str)
        or not isinstance(prefixes, list | tuple)
        or not all(isinstance(prefix, str) and prefix for prefix in prefixes)
    ):
        return [
            _e(
                "E050",
                "RABBITBUS['RPC_REPLY_TO_PREFIXES'] must be a list of non-empty strings.",
                "e.g. ['amq.rabbitmq.reply-to.', 'amq.gen-']: RPC servers reply only to these.",
            )
        ]
    if not prefixes:
        return [
            _e(
                "E051",
                "RABBITBUS['RPC_REPLY_TO_PREFIXES'] is empty: RPC servers would reject every "
                "request unexecuted (a reply_to must start with one of them).",
                "Leave the key out for the default, ['amq.rabbitmq.reply-to.', 'amq.gen-'].",
            )
        ]
    return []


@register("rabbitbus")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The system check: validates ``settings.RABBITBUS`` without any I/O."""
    from django.conf import settings

    return setting_errors(getattr(settings, "RABBITBUS", {}))


# -- monitoring (rabbitbus.E060-E069 / W060-W069) ----------------------------


def management_errors(raw: Any) -> list[CheckMessage]:
    """Problems with ``RABBITBUS['MANAGEMENT']`` (None means "not configured")."""
    where = "RABBITBUS['MANAGEMENT']"
    hint = "e.g. {'URL': 'http://127.0.0.1:15672', 'USER': 'guest', 'PASSWORD': '...'}"
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [_e("E060", f"{where} must be a dict or None.", hint)]
    errors = _unknown_keys(raw, MANAGEMENT_KEYS, where)
    url = raw.get("URL")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors.append(_e("E061", f"{where}['URL'] must be an http(s):// URL.", hint))
    timeout = raw.get("TIMEOUT", defaults(ManagementSettings)["TIMEOUT"])
    if not is_number(timeout) or timeout <= 0:
        errors.append(_e("E062", f"{where}['TIMEOUT'] must be a positive number.", "e.g. 3"))
    return errors


def monitoring_errors(raw: Any) -> list[CheckMessage]:
    """Problems with ``RABBITBUS['MONITORING']``."""
    where = "RABBITBUS['MONITORING']"
    if not isinstance(raw, dict):
        return [_e("E063", f"{where} must be a dict.", "e.g. {'STALE_AFTER': 60}")]
    errors = _unknown_keys(raw, MONITORING_KEYS, where)
    stale = raw.get("STALE_AFTER", defaults(MonitoringSettings)["STALE_AFTER"])
    if not is_number(stale) or stale <= 0:
        errors.append(_e("E064", f"{where}['STALE_AFTER'] must be positive seconds.", "e.g. 60"))
    for key in ("EVENTS_EXCHANGE", "DLQ_SUFFIX"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            errors.append(_e("E065", f"{where}[{key!r}] must be a non-empty string.", "A name."))
    return errors


@register("rabbitbus")
def check_monitoring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The monitoring settings, checked without any I/O."""
    from django.conf import settings

    raw = getattr(settings, "RABBITBUS", {})
    if not isinstance(raw, dict):
        return []
    return management_errors(raw.get("MANAGEMENT")) + monitoring_errors(
        raw.get("MONITORING", DEFAULTS["MONITORING"])
    )
