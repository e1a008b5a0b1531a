"""Real server processes, started the way an operator starts them (for attack tests).

    agent_process_factory (module) -> make(env: dict | None = None, *, nofile=None) -> ServerProcess
        `monitor-agent run` with DATA_DIR in a fresh tmp dir, NODE_LOG_SOURCE=none, a free
        MONITOR_PORT and a generated MONITOR_API_TOKEN unless `env` says otherwise (and at most
        `nofile` open files); returns once /api/health answers.
    console_process_factory (module) -> make(*args, start_seed=False) -> ServerProcess
        `seedctl console` over a one-seed loopback spec with extra CLI `args` (the real seed is
        started first with `start_seed`; the console serves either way); returns once /healthz
        answers. `.password` is the operator password, `.spec_path` the spec.
    ServerProcess: .proc, .port, .base_url, .token / .password, .output() (log so far), .stop()

Everything started is stopped at module teardown (SIGTERM to the process group, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from seed import lifecycle
from seed.spec import load_spec
from seed.supervisor import Child, ChildError
from tests.plugins.seed import build_spec_data
from tests.plugins.tools import unique_ports

BIN = Path(sys.executable).parent


@dataclass
class ServerProcess:
    child: Child
    port: int
    log_path: Path
    token: str = ""
    password: str = ""
    spec_path: Path | None = None
    secrets_dir: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen:
        assert self.child.popen is not None
        return self.child.popen

    def output(self) -> str:
        return self.child.output()

    def stop(self) -> int | None:
        self.child.stop(20)
        return self.child.returncode


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_", "SEEDCTL_"))
    }
    env.update(extra)
    return env


def _start(
    cmd: list[str], env: dict[str, str], log_path: Path, port: int, ready_path: str, nofile: int | None = None
) -> Child:
    """Start `cmd` (at most `nofile` open files: as a small systemd unit might set) and wait until
    http://127.0.0.1:port{ready_path} answers 200; AssertionError with its log otherwise."""
    child = Child(Path(cmd[0]).name, cmd, log_path, env, nofile=nofile, append=False).start()
    try:
        child.wait_http(f"http://127.0.0.1:{port}{ready_path}", 60)
    except ChildError as exc:
        child.stop(5)
        raise AssertionError(f"{exc}\n{child.output()}") from None
    return child


@pytest.fixture(scope="module")
def agent_process_factory(tmp_path_factory):
    """Start real `monitor-agent run` processes; all are stopped at module teardown."""
    ports = unique_ports()
    started: list[ServerProcess] = []

    def make(env: dict | None = None, *, nofile: int | None = None) -> ServerProcess:
        root = tmp_path_factory.mktemp("agent-proc")
        env = dict(env or {})
        env.setdefault("DATA_DIR", str(root / "data"))
        env.setdefault("NODE_LOG_SOURCE", "none")
        env.setdefault("MONITOR_PORT", str(ports()))
        env.setdefault("MONITOR_API_TOKEN", secrets.token_urlsafe(24))
        port = int(env["MONITOR_PORT"])
        child = _start([str(BIN / "monitor-agent"), "run"], _clean_env(**env), root / "agent.log", port,
                       "/api/health", nofile)  # fmt: skip
        running = ServerProcess(child, port, root / "agent.log", token=env["MONITOR_API_TOKEN"])
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def console_process_factory(tmp_path_factory, nats_server_bin):
    """Start real `seedctl console` processes; all are stopped at module teardown."""
    ports = unique_ports()
    started: list[ServerProcess] = []
    seeds: list = []

    def make(*args: str, start_seed: bool = False) -> ServerProcess:
        root = tmp_path_factory.mktemp("console-proc")
        data = build_spec_data(ports)
        spec_path = root / "seed.yaml"
        spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
        if start_seed:
            spec = load_spec(spec_path)
            seeds.append(spec)
            lifecycle.up(spec, None, spec.state_dir, nats_server_bin)
        port = ports()
        cmd = [str(BIN / "seedctl"), "console", "--spec", str(spec_path), "--port", str(port),
               "--interval", "1", "--db", str(root / "console.db"), *args]  # fmt: skip
        child = _start(cmd, _clean_env(), root / "console.log", port, "/healthz")
        secrets_dir = root / data.get("secrets_dir", "secrets")
        running = ServerProcess(
            child,
            port,
            root / "console.log",
            password=(secrets_dir / "console.password").read_text().strip(),
            spec_path=spec_path,
            secrets_dir=secrets_dir,
        )
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
    for spec in seeds:
        with contextlib.suppress(Exception):
            lifecycle.down(spec, None, spec.state_dir, timeout=5.0, lame_duck=False)
