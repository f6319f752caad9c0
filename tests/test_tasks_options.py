"""The task backend's ``OPTIONS``: every value checked, the error naming option, value and
what it must be; the backend refuses them when first used, ``rabbit_tasks`` says why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from rabbitbus.exceptions import ConfigurationError
from rabbitbus.tasks.compat import task_backends
from rabbitbus.tasks.options import DEFAULTS, TaskOptions
from tests.tasks_support import params

#: A bad value of each option, and words of what the error says it must be.
BAD_VALUES = [
    ("CONNECTION", "nope", "RABBITBUS['CONNECTIONS']"),
    ("CONNECTION", None, "RABBITBUS['CONNECTIONS']"),
    ("DATABASE", "nope", "one of the DATABASES ['default'"),
    ("DATABASE", ["default"], "one of the DATABASES"),
    ("QUEUE_PREFIX", 7, "a string"),
    ("DELIVERY", "later", "('on_commit', 'outbox')"),
    ("MAX_PRIORITY", True, "None or a whole number 1..255"),
    ("MAX_PRIORITY", 10.0, "None or a whole number 1..255"),
    ("MAX_PRIORITY", "10", "None or a whole number 1..255"),
    ("MAX_PRIORITY", 0, "None or a whole number 1..255"),
    ("MAX_PRIORITY", 256, "None or a whole number 1..255"),
    ("RECORD_ENQUEUED", "no", "True or False"),
    ("RECORD_ENQUEUED", 0, "True or False"),
    ("RECORD_ENQUEUED", None, "True or False"),
    ("RESULT_RETENTION_DAYS", "x", "a positive number of days"),
    ("RESULT_RETENTION_DAYS", -1, "a positive number of days"),
    ("RESULT_RETENTION_DAYS", 0, "a positive number of days"),
    ("RESULT_RETENTION_DAYS", True, "a positive number of days"),
    ("RESULT_RETENTION_DAYS", float("inf"), "a positive number of days"),
    ("RESULT_RETENTION_DAYS", float("nan"), "a positive number of days"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_VALUES)
def test_a_bad_value_names_the_option_the_value_and_what_it_must_be(
    key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        TaskOptions.parse({key: value}, "default")
    message = str(raised.value)
    assert message.startswith(f"TASKS['default']['OPTIONS']['{key}'] must be ")
    assert expected in message
    assert message.endswith(f", not {value!r}.")


def test_every_option_is_checked() -> None:
    """Each key of DEFAULTS appears in BAD_VALUES: a new option comes with its check."""
    assert {key for key, _, _ in BAD_VALUES} == set(DEFAULTS)


@pytest.mark.parametrize(
    "good",
    [
        {},
        {"MAX_PRIORITY": 1, "RESULT_RETENTION_DAYS": 0.5, "RECORD_ENQUEUED": False},
        {"MAX_PRIORITY": 255, "RESULT_RETENTION_DAYS": 30, "QUEUE_PREFIX": ""},
        {"DELIVERY": "outbox", "DATABASE": "default", "CONNECTION": "default"},
    ],
)
def test_good_values_are_kept(good: dict[str, Any]) -> None:
    parsed = TaskOptions.parse(good)
    for key, value in {**DEFAULTS, **good}.items():
        assert getattr(parsed, key.lower()) == value


def test_unknown_keys_and_options_that_are_no_dict_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("Unknown keys ['RETENTION']")):
        TaskOptions.parse({"RETENTION": 3})
    with pytest.raises(ConfigurationError, match=re.escape("OPTIONS must be a dict, not [")):
        TaskOptions.parse([("DELIVERY", "outbox")])


@pytest.mark.parametrize(
    ("option", "value"), [("RESULT_RETENTION_DAYS", "x"), ("DATABASE", "nope")]
)
def test_the_backend_refuses_a_bad_value_when_first_used(option: str, value: Any) -> None:
    with override_settings(TASKS={"default": params("unused", **{option: value})}):
        with pytest.raises(ConfigurationError, match=re.escape(f"['{option}'] must be")):
            task_backends["default"]  # noqa: B018 - the first use builds the backend
        with pytest.raises(CommandError, match=re.escape(f"['{option}'] must be")):
            call_command("rabbit_tasks", "--prune")


@pytest.mark.parametrize("days", ["-1", "0", "-0.5", "nan", "inf"])
def test_rabbit_tasks_prune_refuses_days_that_are_not_positive(days: str) -> None:
    """``--prune -1`` once meant "the configured retention" (-1 was the no-number marker)."""
    refused = pytest.raises(CommandError, match="--prune DAYS must be a positive number of days")
    with override_settings(TASKS={"default": params("unused")}), refused:
        call_command("rabbit_tasks", "--prune", days)


def test_rabbit_tasks_prune_refuses_days_that_are_no_number() -> None:
    refused = pytest.raises(CommandError, match="invalid float value: 'x'")
    with override_settings(TASKS={"default": params("unused")}), refused:
        call_command("rabbit_tasks", "--prune", "x")
