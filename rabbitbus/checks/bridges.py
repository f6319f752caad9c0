"""System checks for bridges and the outbox (ids rabbitbus.E040-E049, W040-W049).

Bridges from ``RABBITBUS['BRIDGES']`` and from ``bridge()`` calls in
``rabbit.py`` are checked the same way. Imports are tried (no I/O). The app's
``ready()`` connects no bridge with :func:`blocking_errors` (it would fail at
every save instead of publishing), so a mistake reads the same at startup.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, register
from django.dispatch import Signal

from rabbitbus.checks.base import error as _e
from rabbitbus.conf import DEFAULTS, MODEL_EVENTS, OutboxSettings, defaults, is_number, numbers
from rabbitbus.outbox.bridges import (
    SETTING_KEYS,
    Bridge,
    label,
    options_problem,
    registered,
    resolve,
)
from rabbitbus.outbox.on_commit import FAILURE_POLICIES, MODES

OUTBOX_DEFAULTS = defaults(OutboxSettings)
OUTBOX_NUMBERS = numbers(OutboxSettings)


def bridge_setting_errors(raw: Any) -> list[CheckMessage]:
    """Structural problems with ``RABBITBUS['BRIDGES']`` (rabbitbus.E040)."""
    hint = f"A list of dicts with keys among {', '.join(sorted(SETTING_KEYS))}."
    if not isinstance(raw, list | tuple):
        return [_e("E040", "RABBITBUS['BRIDGES'] must be a list.", hint)]
    errors: list[CheckMessage] = []
    for index, entry in enumerate(raw):
        where = f"RABBITBUS['BRIDGES'][{index}]"
        if not isinstance(entry, dict) or "EXCHANGE" not in entry:
            errors.append(_e("E040", f"{where} must be a dict with an EXCHANGE.", hint))
        elif set(entry) - set(SETTING_KEYS):
            unknown = ", ".join(sorted(set(entry) - set(SETTING_KEYS)))
            errors.append(_e("E040", f"{where} has unknown key(s) {unknown}.", hint))
    return errors


def _source_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    hint = "MODEL is 'app_label.ModelName' or a model class; SIGNAL a Signal or its dotted path."
    if declared.model is None and declared.signal is None:
        return [_e("E041", f"{where} names neither a model nor a signal.", hint)]
    if declared.model is not None and not isinstance(declared.model, str | type):
        return [_e("E041", f"{where}: MODEL {declared.model!r} is not a model.", hint)]
    try:
        declared.model_class()
        signal = resolve(declared.signal)
    except (LookupError, ImportError, ValueError) as exc:
        return [_e("E041", f"{where} points at a model or signal that does not exist: {exc}", hint)]
    if signal is not None and not isinstance(signal, Signal):
        return [_e("E041", f"{where}: SIGNAL is not a django.dispatch.Signal.", hint)]
    return []


def _exchange_name_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    if isinstance(declared.exchange, str):
        return []
    return [_e("E042", f"{where}: bad exchange {declared.exchange!r}.", "A name.")]


def _connection_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    """E047: a ``CONNECTION`` that names no ``RABBITBUS['CONNECTIONS']`` alias (every
    publish of the bridge would raise ``ConfigurationError``)."""
    from rabbitbus.conf import settings

    aliases = settings.CONNECTIONS
    if not isinstance(aliases, dict) or declared.connection in aliases:
        return []  # a bad CONNECTIONS is E003's
    known = ", ".join(map(repr, aliases)) or "none"
    return [
        _e(
            "E047",
            f"{where}: CONNECTION {declared.connection!r} is not a RABBITBUS['CONNECTIONS'] alias.",
            f"One of {known}.",
        )
    ]


def _undeclared_errors(where: str, declared: Bridge, exchanges: Any) -> list[CheckMessage]:
    """E042 for an exchange missing from ``EXCHANGES``: not blocking, since code may
    declare it (the topology registry), so the bridge is connected all the same."""
    name = declared.exchange
    if not isinstance(name, str) or name.startswith("amq."):
        return []
    if isinstance(exchanges, dict) and name not in exchanges:
        return [
            _e(
                "E042",
                f"{where} publishes to exchange {name!r}, which is not in RABBITBUS['EXCHANGES'].",
                "Declare it there so rabbit_setup creates it.",
            )
        ]
    return []


def _builder_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    hint = "A callable or the dotted path of one; PAYLOAD may also be a list of field names."
    errors: list[CheckMessage] = []
    for name in ("payload", "headers", "routing_key"):
        value = getattr(declared, name)
        if value is None or (name == "routing_key" and isinstance(value, str)):
            continue
        if name == "payload" and isinstance(value, list | tuple):
            errors += _field_errors(where, declared, value)
            continue
        if name == "headers" and isinstance(value, dict):
            continue
        try:
            builder = resolve(value)
        except (ImportError, ValueError) as exc:
            errors.append(_e("E043", f"{where}: {name} builder cannot be imported: {exc}", hint))
            continue
        if not callable(builder):
            errors.append(_e("E043", f"{where}: {name} builder is not callable.", hint))
    return errors


def _field_errors(where: str, declared: Bridge, names: Any) -> list[CheckMessage]:
    try:
        model = declared.model_class()
    except (LookupError, ValueError):
        return []  # reported as E041
    if model is None:
        return []
    known = {f.name for f in model._meta.concrete_fields} | {
        f.attname for f in model._meta.concrete_fields
    }
    unknown = [str(name) for name in names if name not in known]
    if unknown:
        return [
            _e("E043", f"{where}: PAYLOAD names unknown field(s) {', '.join(unknown)}.", "Fix.")
        ]
    return []


def _mode_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if declared.mode not in MODES:
        errors.append(
            _e("E044", f"{where} has unknown MODE {declared.mode!r}.", f"One of {MODES}.")
        )
    events = declared.events
    if declared.signal is None and not (
        isinstance(events, list | tuple | set | frozenset)
        and events
        and all(event in MODEL_EVENTS for event in events)
    ):
        errors.append(
            _e("E044", f"{where} has bad EVENTS {events!r}.", f"A subset of {MODEL_EVENTS}.")
        )
    return errors


def _message_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    """E046: ``TYPE`` and ``OPTIONS``, which every message of the bridge is built with."""
    errors: list[CheckMessage] = []
    if declared.type is not None and not isinstance(declared.type, str):
        errors.append(
            _e(
                "E046",
                f"{where}: TYPE {declared.type!r} is not a string or None.",
                "A format string, e.g. '{app_label}.{model}.{event}'.",
            )
        )
    problem = options_problem(declared.options)
    if problem:
        errors.append(_e("E046", f"{where}: {problem}.", "e.g. {'mandatory': False}"))
    return errors


def blocking_errors(where: str, declared: Bridge) -> list[CheckMessage]:
    """The problems that keep one bridge from publishing: the app's ``ready()`` leaves a
    bridge with any unconnected (a WARNING says why), so no save raises because of them."""
    return [
        *_source_errors(where, declared),
        *_exchange_name_errors(where, declared),
        *_connection_errors(where, declared),
        *_builder_errors(where, declared),
        *_mode_errors(where, declared),
        *_message_errors(where, declared),
    ]


def bridge_errors(where: str, declared: Bridge, exchanges: Any) -> list[CheckMessage]:
    """Every problem with one bridge."""
    return [
        *blocking_errors(where, declared),
        *_undeclared_errors(where, declared, exchanges),
    ]


def outbox_errors(raw: Any) -> list[CheckMessage]:
    """Problems with ``RABBITBUS['OUTBOX']`` (rabbitbus.E045)."""
    hint = f"Keys: {', '.join(OUTBOX_DEFAULTS)}."
    if not isinstance(raw, dict):
        return [_e("E045", "RABBITBUS['OUTBOX'] must be a dict.", hint)]
    errors: list[CheckMessage] = []
    unknown = set(raw) - set(OUTBOX_DEFAULTS)
    if unknown:
        errors.append(
            _e("E045", f"RABBITBUS['OUTBOX'] has unknown key(s) {sorted(unknown)}.", hint)
        )
    for key in OUTBOX_NUMBERS:
        value = raw.get(key, 1)
        if not is_number(value) or value <= 0:
            errors.append(_e("E045", f"RABBITBUS['OUTBOX'][{key!r}] must be positive.", hint))
    if raw.get("ON_COMMIT_FAILURE", OUTBOX_DEFAULTS["ON_COMMIT_FAILURE"]) not in FAILURE_POLICIES:
        errors.append(
            _e(
                "E045",
                "RABBITBUS['OUTBOX']['ON_COMMIT_FAILURE'] is invalid.",
                f"One of {FAILURE_POLICIES}.",
            )
        )
    return errors


def all_errors(raw: Any) -> list[CheckMessage]:
    """Bridge and outbox problems for the whole ``RABBITBUS`` setting plus ``rabbit.py`` bridges."""
    if not isinstance(raw, dict):
        return []  # rabbitbus.E001
    exchanges = raw.get("EXCHANGES", DEFAULTS["EXCHANGES"])
    settings_bridges = raw.get("BRIDGES", DEFAULTS["BRIDGES"])
    structural = bridge_setting_errors(settings_bridges)
    errors = structural + outbox_errors(raw.get("OUTBOX", DEFAULTS["OUTBOX"]))
    if not structural:
        for index, entry in enumerate(settings_bridges):
            where = f"RABBITBUS['BRIDGES'][{index}]"
            errors += bridge_errors(where, Bridge.from_setting(entry), exchanges)
    for declared in registered():
        errors += bridge_errors(label(declared), declared, exchanges)
    return errors


@register("rabbitbus")
def check_bridges(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The system check for bridges and the outbox. No I/O."""
    from django.conf import settings

    return all_errors(getattr(settings, "RABBITBUS", {}))
