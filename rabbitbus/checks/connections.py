"""System checks for each ``RABBITBUS['CONNECTIONS']`` entry (ids E004-E009, E012, W001-W002).

:func:`rabbitbus.conf.parse_connection` runs the same function and raises on
the first error, so a mistake reads the same in ``manage.py check`` and at run time.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage

from rabbitbus.checks.base import error as _e
from rabbitbus.checks.base import unknown_keys as _unknown_keys
from rabbitbus.checks.base import warning as _w
from rabbitbus.conf import (
    CONNECTION_DEFAULTS,
    ConnectionOptions,
    TLSOptions,
    is_int,
    is_number,
    keys,
)

CONNECTION_KEYS = keys(ConnectionOptions)
TLS_KEYS = keys(TLSOptions)
TIMEOUT_KEYS = tuple(key for key in CONNECTION_DEFAULTS if key.endswith("_TIMEOUT"))


def _url_errors(alias: str, url: Any) -> list[CheckMessage]:
    where = f"RABBITBUS['CONNECTIONS'][{alias!r}]"
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        parts and parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        return [
            _e(
                "E005",
                f"{where} has an invalid AMQP URL.",
                "Use amqp://user:password@host:5672/vhost or amqps://... for TLS.",
            )
        ]
    return []


def _number_errors(alias: str, options: dict[str, Any]) -> list[CheckMessage]:
    where = f"RABBITBUS['CONNECTIONS'][{alias!r}]"
    errors: list[CheckMessage] = []
    heartbeat = options.get("HEARTBEAT", CONNECTION_DEFAULTS["HEARTBEAT"])
    if not is_int(heartbeat) or heartbeat < 0:
        errors.append(
            _e("E006", f"{where}['HEARTBEAT'] must be a whole number of seconds >= 0.", "e.g. 30")
        )
    elif heartbeat == 0:
        errors.append(
            _w(
                "W002",
                f"{where}['HEARTBEAT'] is 0: dead connections go unnoticed.",
                "Use a heartbeat of 10 to 60 seconds.",
            )
        )
    for key in TIMEOUT_KEYS:
        value = options.get(key, 1)
        if not is_number(value) or value <= 0:
            errors.append(
                _e("E006", f"{where}[{key!r}] must be a positive number of seconds.", "e.g. 10")
            )
    name = options.get("CONNECTION_NAME")
    if name is not None and not isinstance(name, str):
        errors.append(_e("E012", f"{where}['CONNECTION_NAME'] must be a string.", "e.g. 'shop'"))
    return errors


def _tls_errors(alias: str, tls: Any, urls: list[Any]) -> list[CheckMessage]:
    where = f"RABBITBUS['CONNECTIONS'][{alias!r}]['TLS']"
    if tls is None:
        return []
    if not isinstance(tls, dict):
        return [_e("E007", f"{where} must be a dict.", f"Keys: {', '.join(sorted(TLS_KEYS))}.")]
    errors = _unknown_keys(tls, TLS_KEYS, where)
    if not any(isinstance(url, str) and url.startswith("amqps://") for url in urls):
        errors.append(
            _e("E009", f"{where} is set but no URL uses amqps://.", "Use amqps:// URLs for TLS.")
        )
    for key in ("CA_FILE", "CERT_FILE", "KEY_FILE"):
        path = tls.get(key)
        if path is not None and not (isinstance(path, str) and os.path.isfile(path)):
            errors.append(
                _e("E008", f"{where}[{key!r}] is not a readable file.", "Check the path.")
            )
    if tls.get("INSECURE"):
        errors.append(
            _w(
                "W001",
                f"{where}['INSECURE'] turns off certificate verification.",
                "Give CA_FILE instead; INSECURE lets anyone on the path read your messages.",
            )
        )
    return errors


def connection_errors(alias: str, raw: Any) -> list[CheckMessage]:
    """Problems with one ``CONNECTIONS`` entry (errors first)."""
    where = f"RABBITBUS['CONNECTIONS'][{alias!r}]"
    if not isinstance(raw, dict):
        return [_e("E004", f"{where} must be a dict.", "e.g. {'URL': 'amqp://...'}")]
    errors = _unknown_keys(raw, CONNECTION_KEYS, where)
    urls = raw.get("URLS")
    if urls is not None and (not isinstance(urls, list | tuple) or not urls):
        errors.append(
            _e("E005", f"{where}['URLS'] must be a non-empty list of URLs.", "Or give URL alone.")
        )
        urls = []
    urls = list(urls or [raw.get("URL", CONNECTION_DEFAULTS["URL"])])
    for url in urls:
        errors += _url_errors(alias, url)
    errors += _number_errors(alias, raw)
    errors += _tls_errors(alias, raw.get("TLS"), urls)
    return sorted(errors, key=lambda message: not message.is_serious())
