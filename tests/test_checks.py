"""Every rabbitbus check id, each from the smallest setting that triggers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from rabbitbus.checks.settings import check_settings, setting_errors
from rabbitbus.runtime import event_loop

URL = "amqp://guest:guest@127.0.0.1:5672/"
ROOT = Path(__file__).resolve().parent.parent


def ids(raw: Any) -> set[str]:
    return {message.id for message in setting_errors(raw)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("amqp://", "rabbitbus.E001"),
        ({"CONNECTION": {}}, "rabbitbus.E002"),
        ({"CONNECTIONS": {"default": {"URL": URL, "HEARTBEET": 5}}}, "rabbitbus.E002"),
        ({"CONNECTIONS": {"primary": {"URL": URL}}}, "rabbitbus.E003"),
        ({"CONNECTIONS": {"default": "amqp://x"}}, "rabbitbus.E004"),
        ({"CONNECTIONS": {"default": {"URL": "http://host/"}}}, "rabbitbus.E005"),
        ({"CONNECTIONS": {"default": {"URL": "amqp://h:99999/"}}}, "rabbitbus.E005"),
        ({"CONNECTIONS": {"default": {"URLS": []}}}, "rabbitbus.E005"),
        ({"CONNECTIONS": {"default": {"HEARTBEAT": -1}}}, "rabbitbus.E006"),
        ({"CONNECTIONS": {"default": {"PUBLISH_TIMEOUT": 0}}}, "rabbitbus.E006"),
        ({"CONNECTIONS": {"default": {"URL": "amqps://h/", "TLS": "yes"}}}, "rabbitbus.E007"),
        (
            {"CONNECTIONS": {"default": {"URL": "amqps://h/", "TLS": {"CA_FILE": "/nope.pem"}}}},
            "rabbitbus.E008",
        ),
        ({"CONNECTIONS": {"default": {"URL": URL, "TLS": {}}}}, "rabbitbus.E009"),
        ({"SERIALIZER": "pickle.dumps.nothing"}, "rabbitbus.E010"),
        ({"SERIALIZER": "json.JSONDecoder"}, "rabbitbus.E010"),
        ({"SERIALIZER": 5}, "rabbitbus.E010"),
        ({"MAX_MESSAGE_SIZE": 0}, "rabbitbus.E011"),
        ({"MAX_MESSAGE_SIZE": 200 * 1024 * 1024}, "rabbitbus.E011"),
        ({"CONNECTIONS": {"default": {"CONNECTION_NAME": 5}}}, "rabbitbus.E012"),
        ({"APP_ID": 7}, "rabbitbus.E013"),
        ({"FAST_PATHS": "no"}, "rabbitbus.E014"),
        ({"EXCHANGES": {"shop": "fan-out"}}, "rabbitbus.E020"),
        ({"EXCHANGES": []}, "rabbitbus.E020"),
        ({"EXCHANGES": {"shop": {"TYPE": ["topic"]}}}, "rabbitbus.E020"),
        ({"QUEUES": {"q": {"TYPE": ["quorum"]}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"TYPE": "stream"}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"TYPE": "classic", "DURABLE": "yes"}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"ARGUMENTS": [("x-max-length", 5)]}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"ARGUMENTS": {5: "x"}}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"MESSAGE_TTL": "60s"}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"MAX_LENGTH": -1}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"DEAD_LETTER_EXCHANGE": 5}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"TYPE": "quorum", "DURABLE": False}}}, "rabbitbus.E022"),
        ({"QUEUES": {"q": {"DELIVERY_LIMIT": 3}}}, "rabbitbus.E023"),
        ({"QUEUES": {"q": {"DELIVERY_LIMIT": 3, "ARGUMENTS": "x"}}}, "rabbitbus.E023"),
        ({"QUEUES": {"q": {"BINDINGS": [("missing", "#")]}}}, "rabbitbus.E024"),
        ({"QUEUES": {"q": {"BINDINGS": "shop"}}}, "rabbitbus.E025"),
        ({"QUEUES": {"q": {"BINDINGS": [("shop",)]}}}, "rabbitbus.E025"),
        ({"RPC_REPLY_TO_PREFIXES": "amq.gen-"}, "rabbitbus.E050"),
        ({"RPC_REPLY_TO_PREFIXES": ["amq.gen-", ""]}, "rabbitbus.E050"),
        ({"RPC_REPLY_TO_PREFIXES": []}, "rabbitbus.E051"),
        ({"RPC_REPLY_TO_PREFIXES": ()}, "rabbitbus.E051"),
        (
            {"CONNECTIONS": {"default": {"URL": "amqps://h/", "TLS": {"INSECURE": True}}}},
            "rabbitbus.W001",
        ),
        ({"CONNECTIONS": {"default": {"HEARTBEAT": 0}}}, "rabbitbus.W002"),
        (
            {
                "QUEUES": {
                    "q": {"TYPE": "classic", "DELIVERY_LIMIT": 3, "DEAD_LETTER_EXCHANGE": "d"}
                }
            },
            "rabbitbus.W003",
        ),
        ({"WORKER": 30}, "rabbitbus.E030"),
        ({"WORKER": {"GRACE": 30}}, "rabbitbus.E031"),
        ({"WORKER": {"GRACE_PERIOD": 0}}, "rabbitbus.E032"),
        ({"WORKER": {"HEARTBEAT_INTERVAL": "5"}}, "rabbitbus.E032"),
        ({"WORKER": {"HEARTBEAT_FILE": 5}}, "rabbitbus.E033"),
        ({"WORKER": {"EVENT_LOOP": "trio"}}, "rabbitbus.E035"),
    ],
)
def test_each_mistake_has_its_id(raw: Any, expected: str) -> None:
    assert expected in ids(raw)


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        ({"EXCHANGE": "shop", "RK": "order.*"}, {"rabbitbus.E002"}),
        ({"EXCHANGE": "shop", "ROUTING_KEY": "x", "EXTRA": 1}, {"rabbitbus.E002"}),
        ({"ROUTING_KEY": "order.*"}, {"rabbitbus.E025"}),
        ({"EXCHANGE": ["shop"], "ROUTING_KEY": "x"}, {"rabbitbus.E025"}),
        ({"EXCHANGE": "shop", "ROUTING_KEY": 5}, {"rabbitbus.E025"}),
        (("shop", None), {"rabbitbus.E025"}),
        ((["shop"], "x"), {"rabbitbus.E025"}),
        ({"EXCHANGE": "shop"}, set()),  # ROUTING_KEY defaults to ""
    ],
)
def test_a_malformed_dict_or_pair_binding_is_reported(binding: Any, expected: set[str]) -> None:
    assert ids({"EXCHANGES": {"shop": "topic"}, "QUEUES": {"q": {"BINDINGS": [binding]}}}) == (
        expected
    )


def test_a_binding_typo_stops_rabbit_setup_before_it_binds() -> None:
    from rabbitbus import topology
    from rabbitbus.exceptions import ConfigurationError

    queues = {"q": {"BINDINGS": [{"EXCHANGE": "shop", "RK": "order.*"}]}}
    with pytest.raises(ConfigurationError, match=r"rabbitbus\.E002: Unknown key\(s\) RK"):
        topology.from_settings({"shop": "topic"}, queues)


def test_uvloop_asked_for_but_not_installed_is_e036(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ids({"WORKER": {"EVENT_LOOP": "uvloop"}}) == set()  # installed in our venvs
    monkeypatch.setattr(event_loop, "uvloop_installed", lambda: False)
    assert ids({"WORKER": {"EVENT_LOOP": "uvloop"}}) == {"rabbitbus.E036"}
    assert ids({"WORKER": {"EVENT_LOOP": "auto"}}) == set()


def test_every_message_has_a_hint() -> None:
    messages = setting_errors({"QUEUES": {"q": {"DELIVERY_LIMIT": 3, "BINDINGS": [("x", "#")]}}})
    assert messages
    assert all(message.hint for message in messages)


def test_a_good_setting_has_no_messages() -> None:
    raw = {
        "CONNECTIONS": {"default": {"URLS": [URL, "amqp://guest:guest@10.0.0.2/"]}},
        "EXCHANGES": {"shop": {"TYPE": "topic"}, "dlx": "fanout"},
        "QUEUES": {
            "orders": {
                "DELIVERY_LIMIT": 5,
                "DEAD_LETTER_EXCHANGE": "dlx",
                "BINDINGS": [("shop", "order.*"), {"EXCHANGE": "shop", "ROUTING_KEY": "x"}],
            }
        },
    }
    assert setting_errors(raw) == []


def test_the_registered_check_reads_django_settings() -> None:
    with override_settings(RABBITBUS={"MAX_MESSAGE_SIZE": -1}):
        assert {message.id for message in check_settings()} == {"rabbitbus.E011"}


@pytest.mark.django_db
def test_manage_py_check_fails_on_an_error() -> None:
    with (
        override_settings(RABBITBUS={"CONNECTIONS": {"default": {"URL": "redis://x"}}}),
        pytest.raises(SystemCheckError, match="rabbitbus.E005"),
    ):
        call_command("check", "--tag", "rabbitbus")  # model checks need the DB on Django 6.1


#: A settings module: the tests' settings with RABBITBUS keys replaced from $RABBITBUS_TEST_BAD.
BAD_SETTINGS = """
import json, os
from tests.settings import *  # noqa: F403
RABBITBUS = {**RABBITBUS, **json.loads(os.environ["RABBITBUS_TEST_BAD"])}  # noqa: F405
"""


def check_in_a_process(tmp_path: Path, **bad: Any) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` in a fresh process whose RABBITBUS has the keys ``bad``: what the
    app's ``ready()`` reads runs there for real (override_settings comes after it)."""
    (tmp_path / "bad_settings.py").write_text(BAD_SETTINGS)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bad_settings",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "RABBITBUS_TEST_BAD": json.dumps(bad),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"MONITORING": []}, "rabbitbus.E063"),
        ({"MONITORING": "x"}, "rabbitbus.E063"),
        ({"MONITORING": None}, "rabbitbus.E063"),
        ({"BRIDGES": [{"MODEL": 5, "EXCHANGE": "shop"}]}, "rabbitbus.E041"),
        ({"BRIDGES": [{"MODEL": "testapp.Order", "EXCHANGE": "shop", "EVENTS": 5}]}, "E044"),
        ({"BRIDGES": [{"MODEL": "testapp.Order", "EXCHANGE": "shop", "SIGNAL": 5}]}, "E041"),
        ({"BRIDGES": [{"MODEL": "testapp.Order", "EXCHANGE": "shop", "CONNECTION": "x"}]}, "E047"),
        ({"QUEUES": {"q": {"ARGUMENTS": [["x-max-length", 5]], "DELIVERY_LIMIT": 3}}}, "E021"),
        ({"QUEUES": {"q": {"MESSAGE_TTL": "60s"}}}, "E021"),
    ],
    ids=[
        "monitoring-list",
        "monitoring-str",
        "monitoring-none",
        "model",
        "events",
        "signal",
        "bridge-connection",
        "queue-arguments",
        "queue-ttl",
    ],  # fmt: skip
)
def test_a_mistake_read_at_startup_is_reported_by_check_not_raised(
    tmp_path: Path, bad: dict[str, Any], expected: str
) -> None:
    result = check_in_a_process(tmp_path, **bad)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_messages_never_contain_the_password() -> None:
    raw = {"CONNECTIONS": {"default": {"URL": "amqp://u:s3cret@h:5672/", "HEARTBEAT": -1}}}
    assert all("s3cret" not in str(message) for message in setting_errors(raw))


# -- bridges and the outbox (rabbitbus.E040-E045) ----------------------------------

SHOP = {"EXCHANGES": {"shop": "topic"}}


def bridge_ids(**bridge: Any) -> set[str]:
    from rabbitbus.checks.bridges import all_errors

    entry = {"MODEL": "testapp.Order", "EXCHANGE": "shop", **bridge}
    return {message.id for message in all_errors({**SHOP, "BRIDGES": [entry]})}


def outbox_ids(outbox: Any) -> set[str]:
    from rabbitbus.checks.bridges import all_errors

    return {message.id for message in all_errors({**SHOP, "OUTBOX": outbox})}


def test_a_good_bridge_setting_has_no_messages() -> None:
    assert bridge_ids(PAYLOAD=["number", "total"], HEADERS="tests.test_checks.headers") == set()


def headers(instance: Any, event: str) -> dict[str, str]:
    return {"event": event}


@pytest.mark.parametrize(
    "raw", [{"BRIDGES": {"MODEL": "testapp.Order"}}, {"BRIDGES": [{"MODEL": "testapp.Order"}]}]
)
def test_malformed_bridges_setting_is_e040(raw: Any) -> None:
    from rabbitbus.checks.bridges import all_errors

    assert {message.id for message in all_errors({**SHOP, **raw})} == {"rabbitbus.E040"}


def test_unknown_bridge_key_is_e040() -> None:
    assert bridge_ids(ROUTINGKEY="x") == {"rabbitbus.E040"}


@pytest.mark.parametrize(
    "bridge",
    [
        {"OPTIONS": {"mandatori": False}},
        {"OPTIONS": {"mandatory": False, "headers": {}}},
        {"OPTIONS": "mandatory"},
        {"TYPE": 5},
    ],
)
def test_bad_bridge_options_or_type_is_e046(bridge: dict[str, Any]) -> None:
    assert bridge_ids(**bridge) == {"rabbitbus.E046"}


def test_a_bridge_on_an_unknown_connection_is_e047() -> None:
    from rabbitbus.checks.bridges import all_errors

    assert bridge_ids(CONNECTION="default") == set()
    entry = {"MODEL": "testapp.Order", "EXCHANGE": "shop", "CONNECTION": "analytics"}
    (message,) = all_errors({**SHOP, "BRIDGES": [entry]})
    assert message.id == "rabbitbus.E047"
    assert "'analytics'" in message.msg and "'default'" in message.hint


def test_e046_names_the_bad_option_and_the_valid_ones() -> None:
    from rabbitbus.checks.bridges import all_errors

    entry = {"MODEL": "testapp.Order", "EXCHANGE": "shop", "OPTIONS": {"mandatori": False}}
    (message,) = all_errors({**SHOP, "BRIDGES": [entry]})
    assert "mandatori" in message.msg
    assert "mandatory, persistent, priority" in message.msg


@pytest.mark.parametrize(
    "bridge",
    [
        {"MODEL": "testapp.NoSuchModel"},
        {"MODEL": "nosuchapp.Order"},
        {"MODEL": None},
        {"MODEL": None, "SIGNAL": "tests.test_checks.no_such_signal"},
        {"MODEL": None, "SIGNAL": "tests.test_checks.headers"},
        {"MODEL": 5},
        {"MODEL": ["testapp.Order"]},
        {"SIGNAL": 5},
    ],
)
def test_bridge_to_a_missing_model_or_signal_is_e041(bridge: dict[str, Any]) -> None:
    assert "rabbitbus.E041" in bridge_ids(**bridge)


def test_bridge_to_an_undeclared_exchange_is_e042() -> None:
    assert bridge_ids(EXCHANGE="shopp") == {"rabbitbus.E042"}


@pytest.mark.parametrize(
    "bridge",
    [
        {"PAYLOAD": "tests.test_checks.no_such_builder"},
        {"PAYLOAD": "tests.test_checks.SHOP"},
        {"PAYLOAD": ["number", "colour"]},
        {"PAYLOAD": ["number", 5]},
        {"HEADERS": "nosuchmodule.headers"},
        {"ROUTING_KEY": 5},
    ],
)
def test_bridge_builder_that_does_not_exist_is_e043(bridge: dict[str, Any]) -> None:
    assert bridge_ids(**bridge) == {"rabbitbus.E043"}


@pytest.mark.parametrize(
    "bridge",
    [
        {"MODE": "later"},
        {"EVENTS": ["saved"]},
        {"EVENTS": "created"},
        {"EVENTS": []},
        {"EVENTS": 5},
        {"EVENTS": None},
        {"EVENTS": [["created"]]},
    ],
)
def test_bad_bridge_mode_or_events_is_e044(bridge: dict[str, Any]) -> None:
    assert bridge_ids(**bridge) == {"rabbitbus.E044"}


@pytest.mark.parametrize(
    "outbox",
    [
        [],
        {"BATCH_SIZ": 10},
        {"BATCH_SIZE": 0},
        {"CLAIM_TIMEOUT": "60"},
        {"ON_COMMIT_FAILURE": "ignore"},
    ],
)
def test_bad_outbox_setting_is_e045(outbox: Any) -> None:
    assert outbox_ids(outbox) == {"rabbitbus.E045"}


def test_bridges_declared_in_code_are_checked_too() -> None:
    from rabbitbus.checks.bridges import check_bridges
    from rabbitbus.outbox import bridges

    declared = bridges.bridge("testapp.Order", exchange="amq.topic", mode="later")
    try:
        assert {message.id for message in check_bridges()} == {"rabbitbus.E044"}
    finally:
        declared.disconnect()
        bridges._registry.remove(declared)


def test_manage_py_check_reports_a_bad_bridge() -> None:
    with (
        override_settings(RABBITBUS={"BRIDGES": [{"MODEL": "testapp.Nope", "EXCHANGE": "x"}]}),
        pytest.raises(SystemCheckError, match="rabbitbus.E041"),
    ):
        call_command("check", "--tag", "rabbitbus")  # model checks need the DB on Django 6.1


# -- monitoring: rabbitbus.E060-E065 -----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"MANAGEMENT": "http://127.0.0.1:15672"}, "rabbitbus.E060"),
        ({"MANAGEMENT": {"URL": "http://h:15672", "PASWORD": "x"}}, "rabbitbus.E002"),
        ({"MANAGEMENT": {"URL": "ftp://h/"}}, "rabbitbus.E061"),
        ({"MANAGEMENT": {"USER": "guest"}}, "rabbitbus.E061"),
        ({"MANAGEMENT": {"URL": "http://h:15672", "TIMEOUT": 0}}, "rabbitbus.E062"),
        ({"MONITORING": []}, "rabbitbus.E063"),
        ({"MONITORING": {"STALE": 5}}, "rabbitbus.E002"),
        ({"MONITORING": {"STALE_AFTER": -1}}, "rabbitbus.E064"),
        ({"MONITORING": {"DLQ_SUFFIX": ""}}, "rabbitbus.E065"),
        ({"MONITORING": {"EVENTS_EXCHANGE": 3}}, "rabbitbus.E065"),
    ],
)
def test_monitoring_check_ids(raw: dict[str, Any], expected: str) -> None:
    from rabbitbus.checks.settings import check_monitoring

    with override_settings(RABBITBUS=raw):
        assert expected in {message.id for message in check_monitoring()}


def test_monitoring_settings_valid() -> None:
    from rabbitbus.checks.settings import check_monitoring

    raw = {
        "MANAGEMENT": {"URL": "http://h:15672", "USER": "u", "PASSWORD": "p", "TIMEOUT": 2},
        "MONITORING": {"STALE_AFTER": 30, "DLQ_SUFFIX": ".dead", "EVENTS_EXCHANGE": "ev"},
    }
    with override_settings(RABBITBUS=raw):
        assert check_monitoring() == []
    assert "rabbitbus.E002" not in ids(raw)


# -- bindings across code and settings (rabbitbus.E034) ----------------------------


def binding_ids(*entities: Any) -> set[str]:
    from rabbitbus import topology
    from rabbitbus.checks.topology import undeclared_exchanges

    known = topology.Topology()
    known.add(*entities)
    return {
        message.id for message in undeclared_exchanges(known.bindings.values(), known.exchanges)
    }


def test_a_binding_to_an_undeclared_exchange_is_e034() -> None:
    from rabbitbus.topology import Binding, Exchange, Queue

    assert binding_ids(Queue("q"), Binding("q", "nowhere", "k")) == {"rabbitbus.E034"}
    assert binding_ids(Exchange("ex", "topic"), Queue("q"), Binding("q", "ex", "k")) == set()
    assert binding_ids(Queue("q"), Binding("q", "amq.topic", "k")) == set()


def test_the_project_binds_only_to_declared_exchanges() -> None:
    from rabbitbus.checks.topology import check_bindings

    assert check_bindings() == []
    with override_settings(RABBITBUS={"CONNECTIONS": {}}):  # the shop's exchange undeclared
        assert {message.id for message in check_bindings()} == {"rabbitbus.E034"}


def test_a_classic_work_queue_beside_a_multi_node_connection_is_w004() -> None:
    from django.conf import settings as django_settings

    from rabbitbus.checks.topology import check_queue_types
    from rabbitbus.consuming import registry

    def handler(message: Any) -> None: ...

    spec = registry.ConsumerSpec(name="w004", handler=handler, queue="w004", queue_type="classic")
    one = {"URL": "amqp://guest:guest@127.0.0.1:5672/"}
    three = {"URLS": [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5681, 5682, 5683)]}
    registry.consumers["w004"] = spec
    try:
        for connection, expected in [(one, set()), (three, {"rabbitbus.W004"})]:
            raw = {**django_settings.RABBITBUS, "CONNECTIONS": {"default": connection}}
            with override_settings(RABBITBUS=raw):
                found = [message for message in check_queue_types() if "w004" in message.msg]
                assert {message.id for message in found} == expected
        with override_settings(
            RABBITBUS={**django_settings.RABBITBUS, "CONNECTIONS": {"default": three}}
        ):
            quorum = registry.ConsumerSpec(name="w004", handler=handler, queue="w004")
            registry.consumers["w004"] = quorum
            assert not [message for message in check_queue_types() if "w004" in message.msg]
    finally:
        del registry.consumers["w004"]


def test_a_settings_binding_to_an_undeclared_exchange_is_reported_once_as_e024() -> None:
    from rabbitbus.checks.topology import check_bindings

    raw = {**SHOP, "QUEUES": {"q": {"BINDINGS": [("nowhere", "k")]}}}
    assert "rabbitbus.E024" in {message.id for message in setting_errors(raw)}
    with override_settings(RABBITBUS=raw):
        assert check_bindings() == []
