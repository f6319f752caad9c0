"""Fixtures for the demo shop's end-to-end tests: its services as real processes."""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator

import pytest
from django.core.management import call_command

from tests.broker import Broker
from tests.shop_services import COMMANDS, ShopServices


@pytest.fixture(scope="module")
def services(
    django_db_setup: None, test_vhost: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShopServices]:
    call_command("rabbit_setup", stdout=io.StringIO())
    running = ShopServices(
        Broker(test_vhost), tmp_path_factory.mktemp("mail"), tmp_path_factory.mktemp("logs")
    )
    try:
        running.start()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def shop(services: ShopServices) -> ShopServices:
    call_command("shop_seed", stdout=io.StringIO())
    return services


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed shop test reports the tail of each service's log: what the processes saw."""
    report = yield
    running = getattr(item, "funcargs", {}).get("services")
    if report.when == "call" and report.failed and isinstance(running, ShopServices):
        for name in (*COMMANDS, "web"):
            report.sections.append((f"{name}'s log (tail)", running.log(name)[-1500:]))
    return report
