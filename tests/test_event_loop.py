"""rabbitbus.runtime.event_loop: which loop the worker commands run on."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from rabbitbus.exceptions import ConfigurationError
from rabbitbus.runtime import event_loop


async def loop_class() -> type:
    return type(asyncio.get_running_loop())


def test_auto_is_uvloop_when_installed_else_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_loop.resolve("auto") == "uvloop"
    monkeypatch.setattr(event_loop, "uvloop_installed", lambda: False)
    assert event_loop.resolve("auto") == "asyncio"


def test_uvloop_asked_for_but_missing_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_loop, "uvloop_installed", lambda: False)
    with pytest.raises(ConfigurationError, match="not installed"):
        event_loop.resolve("uvloop")


def test_an_unknown_loop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="trio"):
        event_loop.resolve("trio")


def test_the_setting_decides_when_no_name_is_given() -> None:
    with override_settings(RABBITBUS={"WORKER": {"EVENT_LOOP": "asyncio"}}):
        assert event_loop.resolve() == "asyncio"
    with override_settings(RABBITBUS={"WORKER": {}}):
        assert event_loop.resolve() == "uvloop"  # the default is auto


def test_run_uses_the_chosen_loop() -> None:
    assert issubclass(event_loop.run(loop_class(), "uvloop"), uvloop.Loop)
    ran_on = event_loop.run(loop_class(), "asyncio")
    assert not issubclass(ran_on, uvloop.Loop)
    assert issubclass(ran_on, asyncio.BaseEventLoop)


@pytest.mark.parametrize("command", ["rabbit_rpc", "rabbit_consume"])
def test_the_worker_commands_refuse_an_unknown_loop(command: str) -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        call_command(command, "--loop", "trio")
