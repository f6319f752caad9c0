"""The RABBITBUS schema in rabbitbus.conf: the one place keys and defaults are declared.

Every default is reachable through the section dataclasses; the system checks
take their valid keys from the schema (an unknown key is reported with the
section's existing check id, a key of the schema never is); and no module of
``rabbitbus/`` outside ``rabbitbus/conf/`` holds a default literal of its own.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from rabbitbus import conf
from rabbitbus.checks.bridges import all_errors
from rabbitbus.checks.settings import management_errors, monitoring_errors, setting_errors
from rabbitbus.conf import settings
from rabbitbus.exceptions import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rabbitbus"

SECTIONS: list[type] = [
    conf.ConnectionOptions,
    conf.TLSOptions,
    conf.ExchangeOptions,
    conf.QueueOptions,
    conf.BindingOptions,
    conf.BridgeOptions,
    conf.WorkerSettings,
    conf.OutboxSettings,
    conf.ManagementSettings,
    conf.MonitoringSettings,
]

#: The defaults as they were before the schema (runtime.py, health.py, outbox.py,
#: monitoring.py, mgmt.py): the schema must not have changed one.
EXPECTED = {
    "WORKER": {
        "EVENT_LOOP": "auto",
        "GRACE_PERIOD": 30,
        "HEARTBEAT_FILE": None,
        "HEARTBEAT_INTERVAL": 5,
        "PROCESSED_RETENTION_DAYS": 7,
        "RECONNECT_MAX_DELAY": 30,
    },
    "OUTBOX": {
        "BATCH_SIZE": 500,
        "CLAIM_TIMEOUT": 60.0,
        "MAX_ATTEMPTS": 5,
        "RETRY_BACKOFF": 5.0,
        "RETENTION": 7 * 24 * 3600.0,
        "POLL_INTERVAL": 0.05,
        "IDLE_INTERVAL": 1.0,
        "ON_COMMIT_FAILURE": "outbox",
        "ON_COMMIT_CONNECT_TIMEOUT": 2.0,
    },
    "MONITORING": {
        "EVENTS_EXCHANGE": "rabbitbus.events",
        "DLQ_SUFFIX": ".dlq",
        "STALE_AFTER": 60.0,
    },
    "MANAGEMENT": {"USER": "guest", "PASSWORD": "guest", "TIMEOUT": 3.0},
    "METRICS": {"PORT": None, "ADDR": "0.0.0.0"},  # noqa: S104
}


def read_through_settings(name: str) -> Any:
    """The section ``name`` as code reads it, with nothing configured."""
    raw = {"MANAGEMENT": {"URL": "http://127.0.0.1:15672"}} if name == "MANAGEMENT" else {}
    with override_settings(RABBITBUS=raw):
        return getattr(settings, name.lower())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_default_is_read_through_the_dataclass(name: str) -> None:
    section = read_through_settings(name)
    assert dataclasses.is_dataclass(section)
    values = {key: getattr(section, key.lower()) for key in conf.defaults(type(section))}
    assert values == EXPECTED[name]
    assert {type(value) for value in values.values()} == {
        type(value) for value in EXPECTED[name].values()
    }


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__)
def test_every_key_of_a_section_is_a_field_of_its_dataclass(section: type) -> None:
    required = {"EXCHANGE": "x", "URL": "http://h"}
    missing = conf.keys(section) - set(conf.defaults(section))
    raw = {key: value for key, value in required.items() if key in missing}
    options = conf.read(section, raw, "here")
    for key, default in conf.defaults(section).items():
        assert getattr(options, key.lower()) == default


def test_sections_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        read_through_settings("WORKER").grace_period = 1  # type: ignore[misc]


def test_what_the_user_sets_wins_and_the_rest_is_defaults() -> None:
    with override_settings(RABBITBUS={"WORKER": {"GRACE_PERIOD": 2}, "OUTBOX": {"BATCH_SIZE": 7}}):
        assert settings.worker.grace_period == 2
        assert settings.worker.heartbeat_interval == EXPECTED["WORKER"]["HEARTBEAT_INTERVAL"]
        assert settings.outbox.batch_size == 7
        assert settings.outbox.overridden({"BATCH_SIZE": 9}).batch_size == 9
    assert settings.worker.grace_period == EXPECTED["WORKER"]["GRACE_PERIOD"]


def test_management_is_none_until_configured() -> None:
    with override_settings(RABBITBUS={}):
        assert settings.management is None


def test_a_section_that_is_not_a_dict_is_a_configuration_error() -> None:
    with override_settings(RABBITBUS={"WORKER": [1]}), pytest.raises(ConfigurationError):
        _ = settings.worker


def test_an_unknown_outbox_override_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="BATCHSIZE"):
        conf.OutboxSettings().overridden({"BATCHSIZE": 5})


def test_the_top_level_defaults_are_unchanged() -> None:
    assert {k: v for k, v in conf.DEFAULTS.items() if k != "WORKER"} == {
        "CONNECTIONS": {"default": {"URL": "amqp://guest:guest@127.0.0.1:5672/"}},
        "SERIALIZER": "rabbitbus.serializers.JSONSerializer",
        "MAX_MESSAGE_SIZE": 1024 * 1024,
        "APP_ID": "rabbitbus",
        "EXCHANGES": {},
        "QUEUES": {},
        "BRIDGES": [],
        "OUTBOX": {},
        "RPC_REPLY_TO_PREFIXES": ("amq.rabbitmq.reply-to.", "amq.gen-"),
        "MANAGEMENT": None,
        "MONITORING": {},
        "METRICS": None,
        "FAST_PATHS": True,
    }
    assert conf.DEFAULTS["WORKER"] == EXPECTED["WORKER"]


# -- the checks take their keys from the schema --------------------------------------


def messages(raw: dict[str, Any]) -> list[Any]:
    """Every check message for ``raw`` (settings, monitoring, bridges and the outbox)."""
    return [
        *setting_errors(raw),
        *management_errors(raw.get("MANAGEMENT")),
        *monitoring_errors(raw.get("MONITORING", {})),
        *all_errors(raw),
    ]


def placed(section: type, entry: dict[str, Any]) -> dict[str, Any]:
    """A whole setting with ``entry`` where ``section`` lives."""
    tls_url = "amqps://h/"
    return {
        conf.ConnectionOptions: {"CONNECTIONS": {"default": entry}},
        conf.TLSOptions: {"CONNECTIONS": {"default": {"URL": tls_url, "TLS": entry}}},
        conf.ExchangeOptions: {"EXCHANGES": {"shop": entry}},
        conf.QueueOptions: {"QUEUES": {"q": entry}},
        conf.BindingOptions: {"EXCHANGES": {"x": "topic"}, "QUEUES": {"q": {"BINDINGS": [entry]}}},
        conf.BridgeOptions: {"EXCHANGES": {"x": "topic"}, "BRIDGES": [entry]},
        conf.WorkerSettings: {"WORKER": entry},
        conf.OutboxSettings: {"OUTBOX": entry},
        conf.ManagementSettings: {"MANAGEMENT": entry},
        conf.MonitoringSettings: {"MONITORING": entry},
    }[section]


def every_key(section: type) -> dict[str, Any]:
    """Each key of ``section`` set (to its default, or a valid value when it has none)."""
    required = {"EXCHANGE": "x", "URL": "http://h" if section is conf.ManagementSettings else None}
    entry = {**conf.defaults(section)}
    for key in conf.keys(section) - set(entry):
        entry[key] = required[key]
    if section is conf.ConnectionOptions:
        entry.update(URL="amqp://h/", URLS=None, TLS=None)
    return entry


def unknown_key_messages(raw: dict[str, Any]) -> list[Any]:
    return [m for m in messages(raw) if "unknown key" in m.msg.lower()]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__)
def test_every_key_of_the_schema_is_accepted_by_the_checks(section: type) -> None:
    assert unknown_key_messages(placed(section, every_key(section))) == []


#: The id each section already used for an unknown key (tests/test_checks.py).
UNKNOWN_KEY_IDS = {
    conf.ConnectionOptions: "rabbitbus.E002",
    conf.TLSOptions: "rabbitbus.E002",
    conf.ExchangeOptions: "rabbitbus.E002",
    conf.QueueOptions: "rabbitbus.E002",
    conf.BridgeOptions: "rabbitbus.E040",
    conf.WorkerSettings: "rabbitbus.E031",
    conf.OutboxSettings: "rabbitbus.E045",
    conf.ManagementSettings: "rabbitbus.E002",
    conf.MonitoringSettings: "rabbitbus.E002",
}


@pytest.mark.parametrize("section", list(UNKNOWN_KEY_IDS), ids=lambda section: section.__name__)
def test_an_unknown_key_gets_its_sections_existing_check_id(section: type) -> None:
    found = unknown_key_messages(placed(section, {**every_key(section), "NOPE": 1}))
    assert [(m.id, "NOPE" in m.msg) for m in found] == [(UNKNOWN_KEY_IDS[section], True)]


def test_an_unknown_top_level_key_is_e002() -> None:
    assert [m.id for m in unknown_key_messages({"NOPE": 1})] == ["rabbitbus.E002"]


# -- no default literal outside the schema ------------------------------------------

#: Keys whose defaults moved into the schema; a literal default for one elsewhere is a second copy.
GUARDED = frozenset().union(
    *(
        conf.keys(section)
        for section in (
            conf.WorkerSettings,
            conf.OutboxSettings,
            conf.MonitoringSettings,
            conf.ManagementSettings,
            conf.ConnectionOptions,
            conf.ExchangeOptions,
            conf.QueueOptions,
            conf.BindingOptions,
        )
    ),
    conf.DEFAULTS,
)


def is_literal(node: ast.AST) -> bool:
    """A value written out in the source: constants, and containers or arithmetic of them."""
    allowed = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List, ast.Dict, ast.Set)
    grammar = (ast.operator, ast.unaryop, ast.expr_context)
    return all(isinstance(sub, allowed + grammar) for sub in ast.walk(node))


#: Each guarded key -> the defaults the schema gives it (in any section).
DEFAULT_VALUES: dict[str, list[Any]] = {}
for _section in SECTIONS:
    for _key, _value in conf.defaults(_section).items():
        DEFAULT_VALUES.setdefault(_key, []).append(_value)


def is_default(key: str, node: ast.AST) -> bool:
    """A literal equal to a default of ``key`` (a constant named like a key may be unrelated)."""
    if not is_literal(node):
        return False
    value = eval(compile(ast.Expression(node), "<literal>", "eval"))  # noqa: S307 - literals only
    return value in DEFAULT_VALUES.get(key, [])


def key_of(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in GUARDED:
        return node.value
    return None


def default_literals(source: str) -> list[str]:
    """Settings keys given a literal default in ``source``.

    ``.get("KEY", <literal>)``, a dict literal ``{"KEY": <literal>}``, and a
    module-level ``KEY = <literal>`` equal to that key's default (as ``STALE_AFTER = 60.0``
    was; frames.py's ``TYPE`` flag bit is not a default).
    """
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "setdefault", "pop")
            and len(node.args) == 2
            and key_of(node.args[0])
            and is_literal(node.args[1])
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}({key_of(node.args[0])!r}, ...)")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key_of(key) and is_literal(value):
                    found.append(f"line {node.lineno}: {{{key_of(key)!r}: ...}}")
    for statement in tree.body:
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else None
                value = statement.value
                if name in GUARDED and value is not None and is_default(name, value):
                    found.append(f"line {statement.lineno}: {name} = ...")
    return found


def test_the_scan_finds_each_kind_of_default_literal() -> None:
    source = (
        "STALE_AFTER = 60.0\nTYPE = 1 << 5\n"
        "OPTIONS = {'BATCH_SIZE': 500, 'OTHER': 1}\n"
        "def grace(worker):\n"
        "    return worker.get('GRACE_PERIOD', 30), worker.get('GRACE_PERIOD', 10 * 3)\n"
        "def fine(worker, default):\n"
        "    return worker.get('GRACE_PERIOD'), worker.get('GRACE_PERIOD', default)\n"
    )
    assert default_literals(source) == [
        "line 3: {'BATCH_SIZE': ...}",
        "line 5: .get('GRACE_PERIOD', ...)",
        "line 5: .get('GRACE_PERIOD', ...)",
        "line 1: STALE_AFTER = ...",
    ]


def test_no_module_outside_the_schema_holds_a_settings_default() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if not {"conf", "migrations"} & set(path.relative_to(PACKAGE).parts)
        and (found := default_literals(path.read_text()))
    }
    assert offenders == {}
