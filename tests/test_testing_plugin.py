"""The pytest plugin in a fresh, minimal Django project (pytester, a subprocess each)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = """
SECRET_KEY = "plugin-test"
INSTALLED_APPS = ["rabbitbus"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
# Nothing listens here: a message that reached the network would fail the test.
RABBITBUS = {
    "CONNECTIONS": {"default": {"URL": "amqp://guest:guest@127.0.0.1:1/", "RECONNECT_TIMEOUT": 1}},
    "EXCHANGES": {"shop": "topic"},
}
"""

TESTS = """
import pytest
import rabbitbus
from rabbitbus.consuming.registry import consumer

SEEN = []


@consumer(queue="plugin.orders", bindings=[("shop", "order.*")])
def take(message):
    SEEN.append(message.body)


def test_capture(rabbit_published):
    rabbitbus.publish("shop", "order.placed", {"id": 1})
    rabbit_published.assert_published(routing_key="order.placed", payload={"id": 1})


def test_readable_failure(rabbit_published):
    rabbitbus.publish("shop", "order.paid", {"id": 2})
    rabbit_published.assert_published(routing_key="order.placed")


@pytest.mark.django_db
@pytest.mark.rabbit_memory(consumers=["take"])
def test_memory(rabbit_memory):
    rabbitbus.publish("shop", "order.placed", {"id": 3})
    assert SEEN == [{"id": 3}]
    assert [o.action for o in rabbit_memory.outcomes("take")] == ["acked"]
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(plugin_settings=SETTINGS, test_orders=TESTS)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{pytester.path}")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    return pytester


def test_fixtures_load_and_a_failure_says_what_was_published(project: pytest.Pytester) -> None:
    # rabbitbus is not pip-installed in the test venvs, so its pytest11 entry point is not
    # there: -p loads the plugin as a user of a source checkout would.
    result = project.runpytest_subprocess(
        "-p", "rabbitbus.testing.plugin", "--ds=plugin_settings", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: No message published matching routing_key='order.placed'.",
            "*Published (1):",
            '*  1. publish shop [[]order.paid[]] {"id": 2}',
        ]
    )


def test_without_the_plugin_the_fixtures_are_missing(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--ds=plugin_settings", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*fixture 'rabbit_published' not found*"])
