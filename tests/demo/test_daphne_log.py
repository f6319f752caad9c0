"""daphne as scripts/demo.sh runs it: no HTTP/2 notice, its other lines kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_browser import free_port, wait_listening
from tests.workers import ROOT

pytestmark = pytest.mark.timeout(60)


def test_daphne_starts_without_the_http2_notice() -> None:
    port = free_port()
    argv = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "demo_shop.asgi:application"]
    daphne = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "demo_shop.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(port, daphne)
    finally:
        daphne.terminate()
        output = daphne.communicate(timeout=30)[0].decode()
    assert f"Listening on TCP address 127.0.0.1:{port}" in output
    assert "HTTP/2" not in output
