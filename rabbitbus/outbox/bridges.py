"""Django signals -> messages, declared once per model or signal.

In an app's ``rabbit.py``::

    rabbitbus.bridge(Order, exchange="shop", routing_key="order.{event}", mode="outbox")

or in settings, ``RABBITBUS["BRIDGES"] = [{"MODEL": "orders.Order", "EXCHANGE": "shop"}]``.
Events are ``created``/``updated`` (``post_save``) and ``deleted``
(``post_delete``); a bridge on a custom ``signal`` publishes event ``signal``.
The routing key is a format string (``{event}``, ``{model}``, ``{app_label}``,
``{pk}``, ``{instance}``) or a callable ``(instance, event) -> str``. The
payload is every concrete field by default, a list of field names, or a
callable (or its dotted path) ``(instance, event, **signal_kwargs) -> payload``;
headers are a dict or such a callable; ``options`` are further
:class:`~rabbitbus.messages.Message` fields (``{"mandatory": False}`` for an
event nobody may be listening to). Messages of one model instance share
the aggregate ``"<app_label>.<model>:<pk>"``, so the outbox keeps their order.
Connecting does no I/O; nothing is published until a signal fires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from django.apps import apps
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal
from django.utils.module_loading import import_string

from rabbitbus.conf import BridgeOptions, defaults, keys
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.messages import Message
from rabbitbus.outbox import on_commit

logger = logging.getLogger("rabbitbus.outbox.bridges")

#: Each ``RABBITBUS['BRIDGES'][i]`` key -> the :class:`Bridge` field it sets.
SETTING_KEYS = {key: key.lower() for key in sorted(keys(BridgeOptions))}
#: The settings' defaults, which are also those of ``bridge()`` in code.
_DEFAULTS = defaults(BridgeOptions)
#: What ``options`` may set: the :class:`~rabbitbus.messages.Message` fields the bridge
#: does not set itself (a fixed ``message_id`` would make every event after the first a
#: duplicate to an idempotent consumer).
MESSAGE_OPTIONS = frozenset(item.name for item in fields(Message)) - {
    "exchange",
    "routing_key",
    "payload",
    "headers",
    "type",
    "message_id",
}


def resolve(value: Any) -> Any:
    """A dotted path imported, anything else as it is."""
    return import_string(value) if isinstance(value, str) else value


def options_problem(options: Any) -> str | None:
    """Why ``options`` are not further Message fields of a bridge, or None: each save
    would raise instead of publishing (the check says rabbitbus.E046)."""
    valid = ", ".join(sorted(MESSAGE_OPTIONS))
    if not isinstance(options, dict):
        return f"OPTIONS {options!r} is not a dict; keys among {valid}"
    unknown = sorted(str(key) for key in set(options) - MESSAGE_OPTIONS)
    if unknown:
        return f"OPTIONS has unknown key(s) {', '.join(unknown)}; valid: {valid}"
    return None


@dataclass(eq=False)
class Bridge:
    """One signal -> message rule. See the module docstring for each field."""

    exchange: str
    model: Any = _DEFAULTS["MODEL"]
    signal: Any = _DEFAULTS["SIGNAL"]
    routing_key: Any = _DEFAULTS["ROUTING_KEY"]
    events: Sequence[str] = _DEFAULTS["EVENTS"]
    payload: Any = _DEFAULTS["PAYLOAD"]
    headers: Any = _DEFAULTS["HEADERS"]
    mode: str = _DEFAULTS["MODE"]
    connection: str = _DEFAULTS["CONNECTION"]
    type: str | None = _DEFAULTS["TYPE"]
    options: dict[str, Any] = field(default_factory=dict)
    _receivers: list[tuple[Signal, Callable[..., None]]] = field(default_factory=list, repr=False)

    @classmethod
    def from_setting(cls, raw: dict[str, Any]) -> Bridge:
        return cls(**{SETTING_KEYS[key]: value for key, value in raw.items()})

    # -- wiring ----------------------------------------------------------------

    def model_class(self) -> Any:
        """The model class, or None for a bridge on a custom signal."""
        if self.model is None or isinstance(self.model, type):
            return self.model
        return apps.get_model(self.model)

    def connect(self) -> None:
        """Connect the signal receivers (raises LookupError/ImportError on bad config)."""
        if self._receivers:
            return
        model = self.model_class()
        if self.signal is not None:
            self._listen(resolve(self.signal), self._on_signal, model)
            return
        if {"created", "updated"} & set(self.events):
            self._listen(post_save, self._on_save, model)
        if "deleted" in self.events:
            self._listen(post_delete, self._on_delete, model)

    def _listen(self, signal: Signal, receiver: Callable[..., None], sender: Any) -> None:
        signal.connect(receiver, sender=sender, weak=False, dispatch_uid=(id(self), id(signal)))
        self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, _receiver in self._receivers:
            signal.disconnect(sender=self.model_class(), dispatch_uid=(id(self), id(signal)))
        self._receivers.clear()

    # -- receivers ---------------------------------------------------------------

    def _on_save(self, sender: Any, instance: Model, created: bool, **kwargs: Any) -> None:
        event = "created" if created else "updated"
        if event in self.events and not kwargs.get("raw"):
            self.emit(instance, event, kwargs.get("using"))

    def _on_delete(self, sender: Any, instance: Model, **kwargs: Any) -> None:
        self.emit(instance, "deleted", kwargs.get("using"))

    def _on_signal(self, sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal", None)
        instance = kwargs.pop("instance", sender)
        self.emit(instance, "signal", kwargs.get("using"), **kwargs)

    # -- building the message -----------------------------------------------------

    def emit(self, instance: Any, event: str, using: str | None, **kwargs: Any) -> str:
        """Build and deliver the message for ``event`` on ``instance``; returns its id."""
        names = self._names(instance, event)
        return on_commit.deliver(
            self.mode,
            self.exchange,
            self._routing_key(instance, event, names),
            self._payload(instance, event, kwargs),
            connection=self.connection,
            using=using,
            aggregate=self._aggregate(instance, names),
            headers=self._headers(instance, event),
            type=self.type.format(**names) if self.type else None,
            **self.options,
        )

    def _names(self, instance: Any, event: str) -> dict[str, Any]:
        meta = getattr(instance, "_meta", None)
        return {
            "event": event,
            "model": meta.model_name if meta else type(instance).__name__.lower(),
            "app_label": meta.app_label if meta else "",
            "pk": getattr(instance, "pk", ""),
            "instance": instance,
        }

    def _routing_key(self, instance: Any, event: str, names: dict[str, Any]) -> str:
        if callable(self.routing_key):
            return str(self.routing_key(instance, event))
        return str(self.routing_key).format(**names)

    def _payload(self, instance: Any, event: str, kwargs: dict[str, Any]) -> Any:
        if self.payload is None or isinstance(self.payload, list | tuple):
            if not isinstance(instance, Model):
                return {key: value for key, value in kwargs.items() if key != "sender"}
            return model_fields(instance, self.payload)
        return resolve(self.payload)(instance, event, **kwargs)

    def _headers(self, instance: Any, event: str) -> dict[str, Any]:
        if self.headers is None:
            return {}
        if isinstance(self.headers, dict):
            return dict(self.headers)
        return dict(resolve(self.headers)(instance, event))

    def _aggregate(self, instance: Any, names: dict[str, Any]) -> str:
        if not isinstance(instance, Model):
            return ""
        return "{app_label}.{model}:{pk}".format(**names)


def model_fields(instance: Model, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Concrete field values by attribute name (``customer_id`` for a foreign key)."""
    fields = instance._meta.concrete_fields
    wanted = set(names) if names is not None else None
    return {
        f.attname: f.value_from_object(instance)
        for f in fields
        if wanted is None or f.name in wanted or f.attname in wanted
    }


_registry: list[Bridge] = []


def bridge(model: Any = None, *, exchange: str, **options: Any) -> Bridge:
    """Declare a bridge (see the module docstring); connected now if apps are ready.

    Returns the :class:`Bridge`; call its ``disconnect()`` to remove it. Raises
    :class:`ConfigurationError` for ``options`` that are not further Message fields (a
    typo would otherwise fail every save); other mistakes are the checks' (E041-E046).
    """
    declared = Bridge(exchange=exchange, model=model, **options)
    problem = options_problem(declared.options)
    if problem:
        raise ConfigurationError(f"{label(declared)}: {problem}.")
    _registry.append(declared)
    if apps.ready:
        _connect(label(declared), declared)
    return declared


def registered() -> list[Bridge]:
    """Bridges declared with :func:`bridge` (settings bridges not included)."""
    return list(_registry)


def label(declared: Bridge) -> str:
    """How checks and log lines name a bridge declared in code."""
    return f"bridge({declared.model or declared.signal!r})"


def from_settings() -> list[tuple[str, Bridge | str]]:
    """``RABBITBUS['BRIDGES']``: (where, the bridge or why there is none) per entry."""
    from rabbitbus.conf import settings

    raw = settings.BRIDGES
    if not isinstance(raw, list | tuple):
        return [("RABBITBUS['BRIDGES']", "it is not a list")]
    return [(f"RABBITBUS['BRIDGES'][{index}]", _entry(entry)) for index, entry in enumerate(raw)]


def _entry(raw: Any) -> Bridge | str:
    if not isinstance(raw, dict) or "EXCHANGE" not in raw:
        return "it is not a dict with an EXCHANGE"
    unknown = sorted(set(raw) - set(SETTING_KEYS))
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}"
    return Bridge.from_setting(raw)


_settings_bridges: list[Bridge] = []


def connect_all() -> None:
    """Connect every declared and configured bridge; called by ``AppConfig.ready()``.

    A bridge that cannot publish (a malformed settings entry, a model or signal
    that does not resolve, any other blocking error of the checks) is skipped with
    a WARNING naming it and why, so a process started without the system checks
    (gunicorn, a worker) still says so, and no save raises because of it. The
    checks report the same (rabbitbus.E040-E047). Settings bridges connected before
    are disconnected first, so calling this again (settings changed) connects each
    bridge once.
    """
    for stale in _settings_bridges:
        stale.disconnect()
    _settings_bridges.clear()
    found: list[tuple[str, Bridge]] = [(label(declared), declared) for declared in _registry]
    for where, entry in from_settings():
        if isinstance(entry, str):
            logger.warning("%s is not connected and will not publish: %s.", where, entry)
        else:
            _settings_bridges.append(entry)
            found.append((where, entry))
    for where, declared in found:
        _connect(where, declared)


def _connect(where: str, declared: Bridge) -> None:
    """Connect ``declared`` unless the checks find it cannot publish (then a WARNING)."""
    from rabbitbus.checks.bridges import blocking_errors

    problems = "; ".join(f"{error.id}: {error.msg}" for error in blocking_errors(where, declared))
    if problems:
        logger.warning("%s is not connected and will not publish: %s", where, problems)
        return
    try:
        declared.connect()
    except (LookupError, ImportError, ValueError) as exc:
        logger.warning("%s is not connected and will not publish: %s", where, exc)
