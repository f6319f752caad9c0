"""Every rabbitbus check id, each from the smallest setting that triggers it."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from rabbitbus.checks import check_settings, setting_errors

URL = "amqp://guest:guest@127.0.0.1:5672/"


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
        ({"MAX_MESSAGE_SIZE": 0}, "rabbitbus.E011"),
        ({"MAX_MESSAGE_SIZE": 200 * 1024 * 1024}, "rabbitbus.E011"),
        ({"CONNECTIONS": {"default": {"CONNECTION_NAME": 5}}}, "rabbitbus.E012"),
        ({"APP_ID": 7}, "rabbitbus.E013"),
        ({"EXCHANGES": {"shop": "fan-out"}}, "rabbitbus.E020"),
        ({"EXCHANGES": []}, "rabbitbus.E020"),
        ({"QUEUES": {"q": {"TYPE": "stream"}}}, "rabbitbus.E021"),
        ({"QUEUES": {"q": {"TYPE": "quorum", "DURABLE": False}}}, "rabbitbus.E022"),
        ({"QUEUES": {"q": {"DELIVERY_LIMIT": 3}}}, "rabbitbus.E023"),
        ({"QUEUES": {"q": {"BINDINGS": [("missing", "#")]}}}, "rabbitbus.E024"),
        ({"QUEUES": {"q": {"BINDINGS": "shop"}}}, "rabbitbus.E025"),
        ({"QUEUES": {"q": {"BINDINGS": [("shop",)]}}}, "rabbitbus.E025"),
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
    ],
)
def test_each_mistake_has_its_id(raw: Any, expected: str) -> None:
    assert expected in ids(raw)


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


def test_manage_py_check_fails_on_an_error() -> None:
    with (
        override_settings(RABBITBUS={"CONNECTIONS": {"default": {"URL": "redis://x"}}}),
        pytest.raises(SystemCheckError, match="rabbitbus.E005"),
    ):
        call_command("check")


def test_messages_never_contain_the_password() -> None:
    raw = {"CONNECTIONS": {"default": {"URL": "amqp://u:s3cret@h:5672/", "HEARTBEAT": -1}}}
    assert all("s3cret" not in str(message) for message in setting_errors(raw))


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
    from rabbitbus.checks import check_monitoring

    with override_settings(RABBITBUS=raw):
        assert expected in {message.id for message in check_monitoring()}


def test_monitoring_settings_valid() -> None:
    from rabbitbus.checks import check_monitoring

    raw = {
        "MANAGEMENT": {"URL": "http://h:15672", "USER": "u", "PASSWORD": "p", "TIMEOUT": 2},
        "MONITORING": {"STALE_AFTER": 30, "DLQ_SUFFIX": ".dead", "EVENTS_EXCHANGE": "ev"},
    }
    with override_settings(RABBITBUS=raw):
        assert check_monitoring() == []
    assert "rabbitbus.E002" not in ids(raw)
