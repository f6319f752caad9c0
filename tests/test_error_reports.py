"""Issue 13, point 1: no broker password on Django's error pages or in its error e-mails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from rabbitbus.error_reports import check_error_reports, mask_credentials

pytestmark = pytest.mark.urls(__name__)

USER = "rabbit-operator"
PASSWORDS = ("url-pw-1", "node-pw-2", "node-pw-3", "mgmt-url-pw", "mgmt-key-pw")
RABBITBUS = {
    "CONNECTIONS": {
        "default": {"URL": f"amqp://{USER}:url-pw-1@127.0.0.1:5672/shop"},
        "cluster": {
            "URLS": [
                f"amqp://{USER}:node-pw-2@10.0.0.2:5672/shop",
                f"amqps://{USER}:node-pw-3@10.0.0.3:5671/shop",
            ]
        },
    },
    "MANAGEMENT": {
        "URL": f"http://{USER}:mgmt-url-pw@127.0.0.1:15672",
        "USER": USER,
        "PASSWORD": "mgmt-key-pw",
    },
}
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]


def boom(request: HttpRequest) -> HttpResponse:
    broker_url = RABBITBUS["CONNECTIONS"]["default"]["URL"]  # noqa: F841 - a traceback local
    raise RuntimeError("the view failed")


urlpatterns = [path("boom/", boom)]


@pytest.fixture
def secrets_configured() -> Iterator[None]:
    with override_settings(RABBITBUS=RABBITBUS, ADMINS=ADMINS):
        yield


def assert_no_password(report: str) -> None:
    assert USER in report  # the settings are in the report
    assert "RABBITBUS" in report
    for password in PASSWORDS:
        assert password not in report


@pytest.mark.usefixtures("secrets_configured")
def test_the_debug_500_page_shows_no_password() -> None:
    with override_settings(DEBUG=True):
        response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "broker_url" in page  # the technical 500 page, with its frame variables
    assert_no_password(page)


@pytest.mark.usefixtures("secrets_configured")
def test_the_error_email_to_admins_shows_no_password(settings: Any) -> None:
    settings.DEBUG = False
    mail.outbox = []
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    (message,) = mail.outbox  # Django's default LOGGING mails ADMINS when DEBUG is off
    assert_no_password(message.subject + message.body)


def test_mask_credentials_masks_every_url_in_a_text() -> None:
    text = "amqp://u:p1@h/v and https://x:p%402@host:15672/api, amqp://nopass@h/"
    assert mask_credentials(text) == (
        "amqp://u:******@h/v and https://x:******@host:15672/api, amqp://nopass@h/"
    )


@pytest.mark.parametrize(
    "rabbitbus",
    [
        {"CONNECTIONS": {"default": {"URL": "amqp://u:secret@h/"}}},
        {"CONNECTIONS": {"default": {"URLS": ["amqp://h1/", "amqp://u:secret@h2/"]}}},
        {"MANAGEMENT": {"URL": "http://u:secret@h:15672"}},
        {"CONNECTIONS": {"default": {"URL": "amqp://guest:guest@h/"}}},  # password = user
    ],
)
def test_a_filter_that_shows_a_url_password_is_w070(rabbitbus: dict[str, Any]) -> None:
    django_filter = "django.views.debug.SafeExceptionReporterFilter"
    with override_settings(RABBITBUS=rabbitbus, DEFAULT_EXCEPTION_REPORTER_FILTER=django_filter):
        (warning,) = check_error_reports()
    assert warning.id == "rabbitbus.W070"
    assert "rabbitbus.error_reports.ExceptionReporterFilter" in str(warning.hint)
    with override_settings(RABBITBUS=rabbitbus):
        assert check_error_reports() == []  # the demo's settings use rabbitbus's filter


def test_urls_without_a_password_need_no_filter() -> None:
    django_filter = "django.views.debug.SafeExceptionReporterFilter"
    rabbitbus = {
        "CONNECTIONS": {"default": {"URL": "amqp://h/"}},
        "MANAGEMENT": {"URL": "http://h"},
    }
    with override_settings(RABBITBUS=rabbitbus, DEFAULT_EXCEPTION_REPORTER_FILTER=django_filter):
        assert check_error_reports() == []
