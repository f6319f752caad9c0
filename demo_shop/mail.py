"""The demo's email backend: Django's file backend, one file per email.

Django's file backend names its file after the time (to the second) and
``id(self)``; a backend per ``send_mail`` is freed at once, so the next one in
the same second often gets the same id and appends to the same file (two
invoices in one file). A random part in the name keeps every email apart.
"""

from __future__ import annotations

import uuid

from django.core.mail.backends import filebased


class EmailBackend(filebased.EmailBackend):
    """Writes each connection's emails (one per ``send_mail``) to a file of its own."""

    def _get_filename(self) -> str:
        if self._fname is None:
            stem = super()._get_filename().removesuffix(".log")
            self._fname = f"{stem}-{uuid.uuid4().hex[:8]}.log"
        return str(self._fname)
