"""scripts/services.sh: enabling the management plugin says what it does, and says so when
it fails (it used to be silenced with ``2>/dev/null || true``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def enable_with(plugins_command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``ensure_rabbitmq_management`` with ``rabbitmq-plugins`` replaced by a script."""
    fake = tmp_path / "rabbitmq-plugins"
    fake.write_text(f"#!/bin/sh\n{plugins_command}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = "source scripts/services.sh && ensure_rabbitmq_management"
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )


def test_a_failed_enable_is_reported_with_the_tools_words(tmp_path: Path) -> None:
    result = enable_with('echo "plugins file not writable" >&2; exit 2', tmp_path)
    assert result.returncode != 0
    assert "Enabling RabbitMQ's management plugin" in result.stdout and "15672" in result.stdout
    assert "Could not enable the management plugin" in result.stderr
    assert "plugins file not writable" in result.stderr


def test_an_enabled_plugin_is_left_alone_quietly(tmp_path: Path) -> None:
    result = enable_with('[ "$2" = is_enabled ] || exit 3', tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
