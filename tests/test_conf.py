"""The RABBITBUS setting: defaults, lazy reads, override_settings, masking."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from django.test import override_settings

from rabbitbus.conf import mask_url, parse_connection, settings
from rabbitbus.exceptions import BrokerUnavailable, ConfigurationError

SECRET = "s3cr3t-pa55"  # noqa: S105 - a fake, to prove it is masked


def test_defaults_fill_what_the_user_left_out() -> None:
    with override_settings(RABBITBUS={}):
        assert settings.MAX_MESSAGE_SIZE == 1024 * 1024
        assert settings.connection().endpoints[0].host == "127.0.0.1"


def test_override_settings_is_seen_at_once() -> None:
    with override_settings(RABBITBUS={"APP_ID": "first"}):
        assert settings.APP_ID == "first"
        with override_settings(RABBITBUS={"APP_ID": "second"}):
            assert settings.APP_ID == "second"
        assert settings.APP_ID == "first"


def test_unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'replica'"):
        settings.connection("replica")


def test_invalid_connection_raises_with_its_check_id() -> None:
    with pytest.raises(ConfigurationError, match="rabbitbus.E006"):
        parse_connection("default", {"HEARTBEAT": "often"})


def test_url_parts_are_parsed() -> None:
    cs = parse_connection("default", {"URL": "amqps://bob:pw@rabbit.example:5673/shop%2Fprod"})
    endpoint = cs.endpoints[0]
    assert (endpoint.host, endpoint.port, endpoint.vhost, endpoint.username, endpoint.tls) == (
        "rabbit.example",
        5673,
        "shop/prod",
        "bob",
        True,
    )


def test_failover_urls_keep_their_order() -> None:
    cs = parse_connection("default", {"URLS": ["amqp://a/", "amqp://b/", "amqp://c/"]})
    assert [endpoint.host for endpoint in cs.endpoints] == ["a", "b", "c"]


def test_password_is_masked_in_repr_and_str() -> None:
    cs = parse_connection("default", {"URL": f"amqp://bob:{SECRET}@h/"})
    assert SECRET not in repr(cs)
    assert SECRET not in str(cs.endpoints[0])
    assert mask_url(f"amqp://bob:{SECRET}@h:5672/v") == "amqp://bob:******@h:5672/v"


def test_password_is_absent_from_the_unreachable_error(caplog: pytest.LogCaptureFixture) -> None:
    from rabbitbus.transport import connections

    cs = parse_connection(
        "default", {"URL": f"amqp://bob:{SECRET}@127.0.0.1:1/", "RECONNECT_TIMEOUT": 0.2}
    )
    caplog.set_level(logging.DEBUG, logger="rabbitbus")
    with pytest.raises(BrokerUnavailable) as excinfo:
        connections.SyncConnection(cs).get()
    assert SECRET not in str(excinfo.value)
    assert SECRET not in caplog.text


def test_tls_verification_is_on_by_default(tmp_path: object) -> None:
    import ssl

    cs = parse_connection("default", {"URL": "amqps://h/"})
    context = cs.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_tls_insecure_must_be_explicit() -> None:
    import ssl

    cs = parse_connection("default", {"URL": "amqps://h/", "TLS": {"INSECURE": True}})
    context = cs.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE


def test_importing_rabbitbus_touches_nothing() -> None:
    code = (
        "import sys, rabbitbus\n"
        "assert 'pika' not in sys.modules and 'aio_pika' not in sys.modules\n"
        "from django.conf import settings\n"
        "assert not settings.configured\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
