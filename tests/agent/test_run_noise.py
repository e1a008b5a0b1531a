"""`monitor-agent run` start-up leaves nothing behind when it refuses, and DATA_DIR stays private."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from monitor_agent.config import save_settings

MONITOR_AGENT = str(Path(sys.executable).parent / "monitor-agent")


def test_a_busy_port_refuses_before_creating_the_api_token(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))
        }
        env.update(
            DATA_DIR=str(tmp_path / "data"), MONITOR_PORT=str(busy.getsockname()[1]), NODE_LOG_SOURCE="none"
        )
        r = subprocess.run([MONITOR_AGENT, "run"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert r.returncode == 2 and "already in use" in r.stderr
    assert not (tmp_path / "data" / "api-token").exists()


def test_settings_file_is_private(tmp_path):
    (tmp_path / "settings.json").write_text("{}")  # an older, looser file
    os.chmod(tmp_path / "settings.json", 0o644)
    save_settings(tmp_path, {"broadcastTasks": False})
    assert stat.S_IMODE((tmp_path / "settings.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp file left behind


def test_env_file_paths_are_relative_to_the_file_and_a_typo_is_named(tmp_path):
    import pytest

    from monitor_agent.config import read_env_file
    from monitor_agent.errors import ConfigError

    folder = tmp_path / "handed-over"
    folder.mkdir()
    (folder / "monitor.env").write_text(
        "# comment\nFEDERATION_SEED_URL=nats://seed.example.org:4222\nFEDERATION_CREDENTIALS=monitor.nk\n"
        "export FEDERATION_SUBJECT_PREFIX='tbfed'\n"
    )
    env = read_env_file(folder / "monitor.env")
    assert env["FEDERATION_CREDENTIALS"] == str((folder / "monitor.nk").resolve())
    assert env["FEDERATION_SUBJECT_PREFIX"] == "tbfed"
    (folder / "bad.env").write_text("FEDERATION_SEED_URL=nats://x:4222\nFEDERATON_CREDENTIALS=x\n")
    with pytest.raises(ConfigError) as err:
        read_env_file(folder / "bad.env")
    assert f"{folder / 'bad.env'}:2" in str(err.value) and "FEDERATON_CREDENTIALS" in str(err.value)
