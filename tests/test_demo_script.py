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


def file_limit(tmp_path: Path, conf: Path, status: str) -> subprocess.CompletedProcess[str]:
    """``raise_rabbit_file_limit`` on ``conf``, then whether a node whose ``rabbitmqctl
    status`` prints ``status`` has sockets enough."""
    fake = tmp_path / "rabbitmqctl"
    fake.write_text(f"#!/bin/sh\necho '{status}'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = (
        f"source scripts/services.sh && RABBIT_ENV_CONF={conf} && "
        "{ raise_rabbit_file_limit && echo raised || echo kept; } && "
        "{ rabbit_has_sockets_enough && echo enough || echo few; }"
    )
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )


def test_a_node_with_debians_1024_descriptors_gets_20000_written_once(tmp_path: Path) -> None:
    """README: a node allowed fewer than 4,000 file descriptors is restarted with 20,000,
    written to rabbitmq-env.conf (once: a second run leaves the file as it is)."""
    conf = tmp_path / "rabbitmq-env.conf"
    conf.write_text("NODENAME=rabbit@localhost\n")
    first = file_limit(tmp_path, conf, "Sockets: 3, limit: 832")
    second = file_limit(tmp_path, conf, "Sockets: 3, limit: 17910")
    assert first.stdout.split()[0] == "raised" and second.stdout.split()[0] == "kept"
    assert conf.read_text().splitlines()[1:] == [
        "# rabbitbus scripts/services.sh: room for more than 830 sockets",
        "ulimit -n 20000 2>/dev/null || true",
    ]
    if subprocess.run(["sh", "-c", "command -v rabbitmq-server"], capture_output=True).returncode:
        return  # without the server installed, any node is taken as it is
    assert (first.stdout.split()[1], second.stdout.split()[1]) == ("few", "enough")
