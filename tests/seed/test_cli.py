"""seedctl as a user runs it: real subprocesses, a real nats-server, files on disk."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from click.testing import CliRunner

from seed.cli import cli
from tests.plugins.seed import build_spec_data
from tests.plugins.tools import http_get

SEEDCTL = [str(Path(sys.executable).parent / "seedctl")]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed seedctl in a subprocess (for what must outlive it: servers it starts)."""
    return subprocess.run(
        [*SEEDCTL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SEEDCTL_SPEC": ""},
    )


def invoke(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The same CLI in-process (fast); same shape of result as `run` (callers pass absolute paths)."""
    res = CliRunner().invoke(cli, list(args), env={"SEEDCTL_SPEC": None})
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def spec_file(tmp_path, port_factory, _seed_secret_cache):
    data = build_spec_data(port_factory)
    path = tmp_path / "seed.yaml"
    shutil.copytree(_seed_secret_cache, tmp_path / "secrets")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    yield path
    # never leave a server behind, whatever the test did
    if (tmp_path / "state" / "seed-1" / "nats-server.pid").exists():
        subprocess.run([*SEEDCTL, "down", "--now", "--spec", str(path)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_up_status_down_lifecycle(spec_file, tmp_path):
    up = run("up", "--spec", str(spec_file), cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "seed-1: healthy" in up.stdout and "1/1 server(s) healthy" in up.stdout
    data = yaml.safe_load(spec_file.read_text())
    monitor = f"http://127.0.0.1:{data['servers'][0]['monitor_port']}"
    # the server outlives the seedctl process that started it
    assert http_get(f"{monitor}/healthz", timeout=3).json() == {"status": "ok"}
    pid = int((tmp_path / "state" / "seed-1" / "nats-server.pid").read_text())
    assert "nats-server" in psutil.Process(pid).name()

    again = run("up", "--spec", str(spec_file), cwd=tmp_path)
    assert again.returncode == 0 and "already running" in again.stdout

    st = run("status", "--spec", str(spec_file), "--json", cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    [row] = json.loads(st.stdout)
    assert row["healthy"] and row["pid"] == pid and row["config_digest"].startswith("sha256:")

    down = run("down", "--spec", str(spec_file), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "stopped (lame duck)" in down.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    log = (tmp_path / "state" / "seed-1" / "nats-server.log").read_text()
    assert "lame duck" in log.lower()
    st = run("status", "--spec", str(spec_file), cwd=tmp_path)
    assert st.returncode == 1 and "seed-1: stopped" in st.stdout


def test_up_reports_the_servers_own_error_when_the_port_is_taken(spec_file, tmp_path):
    import socket

    data = yaml.safe_load(spec_file.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", data["servers"][0]["client_port"]))
        s.listen()
        res = run("up", "--spec", str(spec_file), "--timeout", "10", cwd=tmp_path)
    assert res.returncode == 1
    assert "address already in use" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "state" / "seed-1" / "nats-server.pid").exists()


@pytest.mark.parametrize("command", ["render", "check", "up", "users list"])
def test_spec_error_exits_2_with_one_line_and_writes_nothing(tmp_path, command):
    bad = tmp_path / "seed.yaml"
    bad.write_text("servers:\n  - name: seed-1\n    client_port: 4222\n    clinet_port: 4223\n")
    res = invoke(*command.split(), "--spec", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"{bad}:4: servers[0].clinet_port: unknown key" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed.yaml"]


def test_render_writes_private_configs_that_check_validates(spec_file, tmp_path):
    res = invoke("render", "--spec", str(spec_file), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    conf = tmp_path / "rendered" / "seed-1" / "nats-server.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    chk = invoke("check", "--spec", str(spec_file), cwd=tmp_path)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "seed-1: valid (sha256:" in chk.stdout
    assert "hardening: no findings" in chk.stdout


def test_check_audits_hardening_with_severity_and_fix(tmp_path, port_factory, _seed_secret_cache):
    data = build_spec_data(port_factory)
    shutil.copytree(_seed_secret_cache, tmp_path / "secrets")
    data["servers"][0]["host"] = "0.0.0.0"
    data["servers"][0]["monitor_host"] = "0.0.0.0"
    data["limits"]["max_payload"] = 1024 * 1024
    data["system_account"] = False
    data["users"].append({"name": "legacy", "role": "custom", "password": "hunter2-hunter2-hunter2-x"})
    spec = tmp_path / "seed.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    leaky = tmp_path / "secrets" / "old.password"
    leaky.write_text("x" * 30)
    leaky.chmod(0o644)

    res = invoke("check", "--spec", str(spec), "--json", cwd=tmp_path)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["servers"]["seed-1"]["valid"] is True
    found = {(f["severity"], f["where"]) for f in report["findings"]}
    assert ("high", "servers.seed-1.host") in found  # TLS off on a public address
    assert ("high", "servers.seed-1.monitor_host") in found
    assert ("high", "users.legacy") in found  # no permissions
    assert ("high", "users.legacy.password") in found  # plaintext in the spec
    assert ("medium", "limits.max_payload") in found
    assert ("medium", "system_account") in found
    assert ("high", str(leaky)) in found
    assert all(f["fix"] for f in report["findings"])
    text = invoke("check", "--spec", str(spec), "--fail-on", "never", cwd=tmp_path)
    assert text.returncode == 0
    assert "[HIGH] servers.seed-1.monitor_host" in text.stdout and "Fix: " in text.stdout
    assert "hunter2" not in text.stdout


def test_users_add_list_remove_and_monitor_credentials(spec_file, tmp_path):
    add = invoke("users", "add", "node-a3f7c9d2e1", "--spec", str(spec_file), cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    pw_file = tmp_path / "secrets" / "node-a3f7c9d2e1.password"
    password = pw_file.read_text().strip()
    assert len(password) >= 24 and stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert password not in add.stdout

    lst = invoke("users", "list", "--spec", str(spec_file), "--json", cwd=tmp_path)
    rows = {r["name"]: r for r in json.loads(lst.stdout)}
    assert rows["node-a3f7c9d2e1"]["role"] == "enrolled" and rows["node-a3f7c9d2e1"]["source"] == "added"
    assert rows["node-a3f7c9d2e1"]["permissions"]["publish"] == {"allow": ["tbfed.v1.*.node-a3f7c9d2e1"]}
    assert password not in lst.stdout
    shown = invoke("users", "list", "--spec", str(spec_file), "--show-passwords", cwd=tmp_path)
    assert password in shown.stdout

    out = tmp_path / "creds"
    cred = invoke(
        "users", "credentials", "node-a3f7c9d2e1", "--spec", str(spec_file), "--out", str(out), cwd=tmp_path
    )
    assert cred.returncode == 0, cred.stderr
    cfile = out / "node-a3f7c9d2e1.credentials"
    assert cfile.read_text() == f"node-a3f7c9d2e1:{password}\n"
    assert stat.S_IMODE(cfile.stat().st_mode) == 0o600
    env = dict(
        line.split("=", 1)
        for line in (out / "node-a3f7c9d2e1.env").read_text().splitlines()
        if not line.startswith("#")
    )
    port = yaml.safe_load(spec_file.read_text())["servers"][0]["client_port"]
    assert env["FEDERATION_SEED_URL"] == f"nats://127.0.0.1:{port}"
    assert env["FEDERATION_CREDENTIALS"] == cfile.name  # relative to the env file: no path of this machine
    assert "FEDERATION_NODE_ID" not in env  # a derived id is the node key's, never pinned by the seed
    assert "ENABLE_FEDERATION" not in env  # opting in stays the node operator's choice

    # the agent's own loader accepts what we wrote, read as `monitor-agent run --env-file` reads it
    from monitor_agent.config import load_config, read_env_file

    env = read_env_file(out / "node-a3f7c9d2e1.env")
    cfg = load_config({**env, "DATA_DIR": str(tmp_path / "agent")}, apply_settings=False)
    assert cfg.credentials_file == cfile.resolve()

    refused = invoke("users", "remove", "monitor", "--spec", str(spec_file), cwd=tmp_path)
    assert refused.returncode == 2 and "declared in" in refused.stderr
    rm = invoke("users", "remove", "node-a3f7c9d2e1", "--spec", str(spec_file), cwd=tmp_path)
    assert rm.returncode == 0 and not pw_file.exists()


def test_help_teaches_with_examples(tmp_path):
    for cmd in ("render", "check", "up", "status", "reload", "down", "users", "users add"):
        res = invoke(*cmd.split(), "--help", cwd=tmp_path)
        assert res.returncode == 0
        assert "Examples:" in res.stdout and "seedctl " in res.stdout, cmd
