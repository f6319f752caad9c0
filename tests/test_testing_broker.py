"""rabbitbus.testing's throwaway real broker: the rabbit_broker fixture and RabbitBrokerMixin.

The fixture is exercised in a fresh, minimal project (pytester, a subprocess), whose
settings point at a port where nothing listens: only the fixture's override can make
its messages arrive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import SimpleTestCase

import rabbitbus
from rabbitbus.conf import settings
from rabbitbus.exceptions import BrokerUnavailable
from rabbitbus.testing import RabbitBroker, RabbitBrokerMixin
from rabbitbus.testing.broker import pointed_at
from rabbitbus.testing.vhosts import Vhost, in_vhost

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "amqp://guest:guest@127.0.0.1:1/"

SETTINGS = f"""
SECRET_KEY = "broker-plugin-test"
INSTALLED_APPS = ["rabbitbus"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
USE_TZ = True
RABBITBUS = {{
    "CONNECTIONS": {{"default": {{"URL": "{NOWHERE}", "RECONNECT_TIMEOUT": 1}}}},
    "EXCHANGES": {{"shop": "topic"}},
}}
"""

TESTS = """
import time
from pathlib import Path

import pytest
import rabbitbus
from rabbitbus import rpc
from rabbitbus.consuming.registry import consumer

SEEN = []


@consumer(queue="it.orders", bindings=[("shop", "order.*")])
def take(message):
    SEEN.append(message.body)


@rpc.procedure("it.add")
def add(a, b):
    return a + b


def record(broker):
    with Path("vhosts.txt").open("a") as out:
        out.write(broker.name + "\\n")


def test_leaves_a_message_behind(rabbit_broker):
    record(rabbit_broker)
    rabbitbus.publish("shop", "order.placed", {"id": 0})  # no worker: it stays queued


def test_published_handled_and_called(rabbit_broker):
    record(rabbit_broker)
    rabbit_broker.worker()
    rabbitbus.publish("shop", "order.placed", {"id": 1})
    deadline = time.monotonic() + 10
    while not SEEN and time.monotonic() < deadline:
        time.sleep(0.05)
    assert SEEN == [{"id": 1}]
    assert rabbitbus.call("it.add", 2, 3, timeout=5) == 5


@pytest.mark.rabbit_broker(own_vhost=True)
def test_failing_in_its_own_vhost(rabbit_broker):
    record(rabbit_broker)
    rabbit_broker.worker(consumers=["take"], procedures=())
    raise AssertionError("this test fails on purpose")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(broker_settings=SETTINGS, test_shop=TESTS)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{pytester.path}")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(
        "-p", "rabbitbus.testing.plugin", "--ds=broker_settings", "-p", "no:cacheprovider", *args
    )


def test_a_project_publishes_consumes_and_calls_and_its_vhosts_are_deleted(
    project: pytest.Pytester,
) -> None:
    result = run(project)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: this test fails on purpose"])
    names = (project.path / "vhosts.txt").read_text().split()
    assert len(names) == 3
    assert names[0] == names[1]  # the session's vhost, its queues purged in between
    assert names[2] != names[0]  # the marked test had a vhost of its own
    assert not [name for name in names if Vhost(name=name).exists()]


def test_an_unreachable_broker_fails_with_where_it_looked(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITBUS_TEST_MANAGEMENT_URL", "http://127.0.0.1:1")
    result = run(project, "--rabbit-broker-url", NOWHERE, "-k", "published")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*BrokerUnavailable: Could not create the test vhost*"])
    result.stdout.fnmatch_lines(["*API at http://127.0.0.1:1*"])


def test_an_unreachable_broker_skips_when_asked(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITBUS_TEST_MANAGEMENT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("RABBITBUS_TEST_BROKER_URL", NOWHERE)
    result = run(project, "--rabbit-skip-unavailable", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*RabbitMQ unavailable: Could not create the test vhost*"])


def test_every_connection_is_pointed_at_the_vhost(settings_override: None) -> None:
    pointed = pointed_at("amqp://u:p@h:5672/v")
    assert pointed["CONNECTIONS"] == {
        "default": {"URL": "amqp://u:p@h:5672/v", "RECONNECT_TIMEOUT": 5},
        "other": {"URL": "amqp://u:p@h:5672/v"},
    }
    assert pointed["APP_ID"] == "kept"


@pytest.fixture
def settings_override(settings: object) -> None:
    settings.RABBITBUS = {  # type: ignore[attr-defined]
        "CONNECTIONS": {
            "default": {
                "URL": "amqp://a/",
                "URLS": ["amqp://a/", "amqp://b/"],
                "TLS": {"x": 1},
                "RECONNECT_TIMEOUT": 5,
            },  # fmt: skip
            "other": {"URL": "amqp://c/"},
        },
        "APP_ID": "kept",
    }


def test_a_vhost_name_is_quoted_into_the_url() -> None:
    assert in_vhost("amqp://g:g@127.0.0.1:5672/", "a/b c") == "amqp://g:g@127.0.0.1:5672/a%2Fb%20c"


def test_the_vhost_is_deleted_when_activation_fails() -> None:
    # The management API answers, the AMQP port does not.
    broker = RabbitBroker(NOWHERE, management_url="http://127.0.0.1:15672")
    with pytest.raises(BrokerUnavailable, match=r"not reachable at amqp://guest:\*+@127.0.0.1:1/"):
        broker.start()
    assert not broker.exists()


class RabbitBrokerMixinTests(RabbitBrokerMixin, SimpleTestCase):
    """The helper for unittest-style tests: a vhost per class, workers per test."""

    def test_connections_use_the_class_vhost(self) -> None:
        assert settings.connection().endpoints[0].vhost == self.rabbit_broker.name
        assert self.rabbit_broker.exists()

    def test_an_rpc_is_answered_by_an_in_process_server(self) -> None:
        self.rabbit_worker(consumers=(), procedures=["test.echo_value"])
        assert rabbitbus.call("test.echo_value", {"n": 1}, timeout=5) == {"n": 1}


def test_the_mixin_deletes_its_vhost_after_the_class() -> None:
    import unittest

    result = unittest.TestResult()
    names: list[str] = []

    class Recording(RabbitBrokerMixinTests):
        def test_connections_use_the_class_vhost(self) -> None:
            names.append(self.rabbit_broker.name)
            super().test_connections_use_the_class_vhost()

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Recording)
    suite.run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert names
    assert not Vhost(name=names[0]).exists()
