"""Topology: parsed from settings and code, declared idempotently, conflicts named."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from rabbitbus import topology
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.topology import Binding, Exchange, Queue
from tests.broker import Broker, unique


def test_settings_are_parsed_in_declaration_order() -> None:
    parsed = topology.from_settings(
        {"shop": "topic", "dlx": {"TYPE": "fanout"}},
        {
            "orders": {
                "DELIVERY_LIMIT": 3,
                "DEAD_LETTER_EXCHANGE": "dlx",
                "BINDINGS": [("shop", "order.*")],
            }
        },
    )
    assert list(parsed) == [
        Exchange("shop", "topic"),
        Exchange("dlx", "fanout"),
        Queue("orders", delivery_limit=3, dead_letter_exchange="dlx"),
        Binding("orders", "shop", "order.*"),
    ]


def test_queue_arguments() -> None:
    queue = Queue("q", delivery_limit=3, dead_letter_exchange="dlx", message_ttl=1000)
    assert queue.broker_arguments() == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "dlx",
        "x-message-ttl": 1000,
    }


def test_invalid_settings_raise_with_the_check_id() -> None:
    with pytest.raises(ConfigurationError, match="rabbitbus.E023"):
        topology.from_settings({}, {"q": {"DELIVERY_LIMIT": 1}})


@pytest.fixture
def names(broker: Broker) -> Iterator[dict[str, str]]:
    created = {
        "exchange": unique("setup.x"),
        "queue": unique("setup.q"),
        "dlx": unique("setup.dlx"),
    }
    yield created
    with broker.channel() as channel:
        channel.queue_delete(created["queue"])
        channel.exchange_delete(created["exchange"])
        channel.exchange_delete(created["dlx"])


def rabbitbus_with(names: dict[str, str], **queue_options: object) -> dict[str, object]:
    return {
        "CONNECTIONS": {"default": {"URL": django_settings.TEST_URL}},
        # The demo shop's consumers (installed apps) bind to its exchanges.
        "EXCHANGES": {
            **django_settings.RABBITBUS["EXCHANGES"],
            names["exchange"]: "topic",
            names["dlx"]: "fanout",
        },
        "QUEUES": {
            names["queue"]: {
                "DELIVERY_LIMIT": 3,
                "DEAD_LETTER_EXCHANGE": names["dlx"],
                "BINDINGS": [(names["exchange"], "order.*")],
                **queue_options,
            }
        },
    }


def test_rabbit_setup_declares_and_prints_and_is_idempotent(
    broker: Broker, names: dict[str, str]
) -> None:
    with override_settings(RABBITBUS=rabbitbus_with(names)):
        for _ in range(2):
            out = io.StringIO()
            call_command("rabbit_setup", stdout=out)
            assert f"declared queue {names['queue']} (quorum)" in out.getvalue()
            assert (
                f"declared binding {names['exchange']} -[order.*]-> {names['queue']}"
                in out.getvalue()
            )
            # 4 from settings, plus what code registered (e.g. the monitoring events exchange).
            assert f"{len(topology.configured())} entities declared." in out.getvalue()
    with broker.channel() as channel:
        channel.basic_publish(names["exchange"], "order.placed", b"{}")
    assert broker.wait_for(lambda: broker.queue_depth(names["queue"]) == 1)


def test_rabbit_setup_is_quiet_with_verbosity_0(broker: Broker, names: dict[str, str]) -> None:
    out = io.StringIO()
    with override_settings(RABBITBUS=rabbitbus_with(names)):
        call_command("rabbit_setup", verbosity=0, stdout=out)
    assert out.getvalue() == ""
    assert broker.queue_depth(names["queue"]) == 0  # declared all the same


def test_a_conflicting_queue_is_named_with_its_argument(
    broker: Broker, names: dict[str, str]
) -> None:
    with broker.channel() as channel:
        channel.queue_declare(names["queue"], durable=True)  # classic, by hand
    with (
        override_settings(RABBITBUS=rabbitbus_with(names)),
        pytest.raises(CommandError) as excinfo,
    ):
        call_command("rabbit_setup", stdout=io.StringIO())
    message = str(excinfo.value)
    assert repr(names["queue"]) in message
    assert "already exists with a different 'x-dead-letter-exchange'" in message


def test_code_registry_is_declared_too(broker: Broker, names: dict[str, str]) -> None:
    extra = unique("setup.code")
    topology.registry.add(Queue(extra, type="classic"))
    try:
        with override_settings(RABBITBUS=rabbitbus_with(names)):
            out = io.StringIO()
            call_command("rabbit_setup", stdout=out)
        assert f"declared queue {extra} (classic)" in out.getvalue()
        assert broker.queue_depth(extra) == 0
    finally:
        topology.registry.queues.pop(extra)
        with broker.channel() as channel:
            channel.queue_delete(extra)


def run_with_broker_down(*command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RABBITBUS_URL": "amqp://guest:guest@127.0.0.1:1/",
        "DJANGO_SETTINGS_MODULE": "demo_shop.settings",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_rabbit_setup_with_the_broker_down_says_so_in_one_line() -> None:
    env = {
        "RABBITBUS_URL": "amqp://guest:guest@127.0.0.1:1/",
        "DJANGO_SETTINGS_MODULE": "demo_shop.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "rabbit_setup"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert result.returncode == 1
    assert "RabbitMQ is not reachable at amqp://guest:******@127.0.0.1:1/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["check"], ["migrate", "--plan"]])
def test_check_and_migrate_work_with_the_broker_down(command: list[str]) -> None:
    env = {
        "RABBITBUS_URL": "amqp://guest:guest@127.0.0.1:1/",
        "DJANGO_SETTINGS_MODULE": "demo_shop.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert result.returncode == 0, result.stderr
