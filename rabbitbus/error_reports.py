"""Django error reports without broker passwords (check id rabbitbus.W070).

Django's ``SafeExceptionReporterFilter`` hides settings whose *names* look
secret (``PASSWORD``, ``KEY``, ``TOKEN`` ...), but not a password inside a
URL: ``RABBITBUS['CONNECTIONS']['default']['URL'] = 'amqp://user:pw@host/'``
is shown in full on the ``DEBUG`` error page and in the error e-mails
``AdminEmailHandler`` sends to ``ADMINS`` in production. Use this filter::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "rabbitbus.error_reports.ExceptionReporterFilter"

It does everything Django's filter does, and also replaces the password of
every ``scheme://user:password@`` URL with ``******`` in settings (every
``URL``, ``URLS`` list and the ``MANAGEMENT`` block of ``RABBITBUS``, and any
other setting such as a ``DATABASE_URL``), in ``request.META`` and in the
local variables of the traceback. Check ``rabbitbus.W070`` warns when the
project's filter would show a password of ``RABBITBUS``.
"""

from __future__ import annotations

import re
from pprint import pformat
from typing import Any

from django.core.checks import CheckMessage, Warning, register
from django.utils.module_loading import import_string
from django.views.debug import SafeExceptionReporterFilter

from rabbitbus.conf import MASK

#: ``scheme://user:password@``: the password is everything up to the ``@``.
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")


def mask_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` URL in it masked."""
    return _CREDENTIALS.sub(rf"\g<head>{MASK}@", text)


class _MaskedRepr:
    """Shows a traceback variable as its ``pformat``, with URL passwords masked."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return mask_credentials(pformat(self.value))


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus masked passwords in URLs (see the module docstring)."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)  # recurses through self
        return mask_credentials(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, _MaskedRepr(value)) for name, value in variables]


def url_credentials(raw: Any) -> set[str]:
    """The ``scheme://user:password@`` parts of the URLs in a raw ``RABBITBUS`` setting."""
    raw = raw if isinstance(raw, dict) else {}
    connections = raw.get("CONNECTIONS")
    blocks = list(connections.values()) if isinstance(connections, dict) else []
    blocks.append(raw.get("MANAGEMENT"))
    urls: list[Any] = []
    for block in blocks:
        if isinstance(block, dict):
            more = block.get("URLS")
            urls += [block.get("URL"), *(more if isinstance(more, list | tuple) else ())]
    matches = (_CREDENTIALS.search(url) for url in urls if isinstance(url, str))
    return {match.group(0) for match in matches if match and not match.group(0).endswith(":@")}


@register("rabbitbus")
def check_error_reports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W070: the project's exception-reporter filter would show a ``RABBITBUS`` password."""
    from django.conf import settings

    raw = getattr(settings, "RABBITBUS", {})
    credentials = url_credentials(raw)
    if not credentials:
        return []
    try:
        reporter_filter = import_string(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)()
    except ImportError:
        return []  # Django fails loudly on its own setting at the first error
    shown = repr(reporter_filter.cleanse_setting("RABBITBUS", raw))
    if not any(credential in shown for credential in credentials):
        return []
    return [
        Warning(
            "Django's error pages and error e-mails would show the password inside a "
            "RABBITBUS URL: DEFAULT_EXCEPTION_REPORTER_FILTER does not mask it.",
            hint="Set DEFAULT_EXCEPTION_REPORTER_FILTER = "
            "'rabbitbus.error_reports.ExceptionReporterFilter' (or subclass it).",
            id="rabbitbus.W070",
        )
    ]
