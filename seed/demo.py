"""`seedctl demo`: a whole federation on loopback from embedded defaults.

One seed server from a generated spec with fresh credentials, the health console, and two
monitor agents with federation on: A follows a bundled sample node log replayed with realistic
timing, B only receives. Every part is a real process (nats-server, `seedctl console`,
`monitor-agent run`); `Demo.stop()` ends all of them. The pieces (`pick_ports`,
`AgentProcess`, `managed_process`) are also used by bench/federation_scale.py; processes are
seed.supervisor.Child.
"""

from __future__ import annotations

import contextlib
import os
import secrets as _random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from . import lifecycle
from . import secrets as seed_secrets
from .monitoring import http_get
from .spec import Spec, load_spec
from .supervisor import Child, ChildError
from .users import effective_users, user_password, write_credentials_file

HOST = "127.0.0.1"
# The ports an operator knows from the docs, used when free; otherwise the OS picks.
PREFERRED_PORTS = {"seed": 4222, "seed_monitor": 8222, "console": 8300, "agent_a": 8090, "agent_b": 8091}
SPEC_FILE = "demo-seed.yaml"
DEMO_USER = "monitor"
CONSOLE_USER = "admin"
CONSOLE_SECRET = "console"

Progress = Callable[[str], None]


class DemoError(ChildError):
    """A part of the demo could not start; the message names it and quotes its log."""


# ---- ports and generated configuration (pure) ----


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def os_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pick_ports(preferred: Mapping[str, int] = PREFERRED_PORTS, host: str = HOST, fixed: bool = True) -> dict:
    """A distinct free loopback port per role: the preferred one when free (and `fixed`), else any."""
    chosen: dict[str, int] = {}
    for role, port in preferred.items():
        if not (fixed and port not in chosen.values() and port_free(port, host)):
            port = os_port(host)
            while port in chosen.values():
                port = os_port(host)
        chosen[role] = port
    return chosen


def demo_spec_data(ports: Mapping[str, int]) -> dict:
    """The seed spec of the demo: one server on loopback, admin + shared monitor user, the console."""
    return {
        "name": "tbfed-demo",
        "servers": [
            {
                "name": "seed-1",
                "host": HOST,
                "client_port": ports["seed"],
                "monitor_host": HOST,
                "monitor_port": ports["seed_monitor"],
            }
        ],
        "users": [
            {"name": CONSOLE_USER, "role": "admin"},
            {"name": DEMO_USER, "role": "monitor"},
            {"name": "observer", "role": "observer"},
        ],
        "limits": {"lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1},
        "console": {"host": HOST, "port": ports["console"], "sample_interval_s": 5, "history_days": 1},
        "secrets_dir": "secrets",
        "state_dir": "state",
        "rendered_dir": "rendered",
    }


def agent_env(
    *,
    data_dir: Path,
    port: int,
    seed_urls: list[str],
    credentials_file: Path,
    token: str,
    region: str,
    broadcast: bool,
    log_source: str = "none",
    log_dir: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one `monitor-agent run` (only variables of monitor_agent.config)."""
    env = {
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": ",".join(seed_urls),
        "FEDERATION_CREDENTIALS": str(credentials_file),
        "FEDERATION_BROADCAST_TASKS": "true" if broadcast else "false",
        "FEDERATION_BROADCAST_STATS": "true" if broadcast else "false",
        "FEDERATION_RECEIVE_ENABLED": "true",
        "FEDERATION_REGION": region,
        "FEDERATION_RECONNECT_TIMEOUT": "1000",
        "MONITOR_HOST": HOST,
        "MONITOR_PORT": str(port),
        "MONITOR_API_TOKEN": token,
        "DATA_DIR": str(data_dir),
        "NODE_LOG_SOURCE": log_source,
        "LOG_LEVEL": "INFO",
    }
    if log_dir is not None:
        env["NODE_LOG_DIR"] = str(log_dir)
    env.update(extra or {})
    return env


# ---- child processes ----

def console_script(name: str, module: str) -> list[str]:
    """argv running a console script of this installation (falls back to `python -c`)."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.argv[0] = {name!r}; main()"]


def managed_process(name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> Child:
    """A demo child (supervisor.Child: own process group, log file, ends with the demo) with the
    calling shell's environment less its agent/seed settings, plus `env`."""
    full = {k: v for k, v in os.environ.items() if not _agent_or_seed_variable(k)}
    full.update(env)
    return Child(name, argv, log_path, full)


_CHILD_CONFIG_PREFIXES = ("ENABLE_FEDERATION", "FEDERATION_", "MONITOR_", "NODE_LOG_", "SEEDCTL_")
_CHILD_CONFIG_NAMES = {"DATA_DIR", "NODE_CONTAINER", "DOCKER_HOST", "LOG_LEVEL"}


def _agent_or_seed_variable(name: str) -> bool:
    """Variables of the calling shell that would leak into the children's configuration."""
    return name.startswith(_CHILD_CONFIG_PREFIXES) or name in _CHILD_CONFIG_NAMES


def wait_http(url: str, proc: Child, timeout: float, what: str) -> httpx.Response:
    """Poll `url` until it answers 200; fail early (with the child's log) if the child exits."""
    try:
        return proc.wait_http(url, timeout)
    except ChildError as exc:
        raise DemoError(str(exc)) from None


@dataclass
class AgentProcess:
    """One real `monitor-agent run` with its own data dir, port and API token."""

    label: str
    data_dir: Path
    port: int
    env: dict[str, str]
    proc: Child = field(init=False)

    def __post_init__(self) -> None:
        argv = console_script("monitor-agent", "monitor_agent.cli") + ["run"]
        self.proc = managed_process(f"agent {self.label}", argv, self.env, self.data_dir / "agent.log")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token(self) -> str:
        return self.env["MONITOR_API_TOKEN"]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "truebit-monitor.db"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc.start()

    def wait_ready(self, timeout: float = 30.0, connected: bool = True) -> dict:
        """Wait for /api/health, then (if `connected`) for federation state CONNECTED; returns the status."""
        wait_http(f"{self.url}/api/health", self.proc, timeout, f"agent {self.label}")
        deadline = time.monotonic() + timeout
        status: dict = {}
        while True:
            status = http_get(f"{self.url}/api/federation/status", timeout=2.0).json()
            if not connected or status.get("connected"):
                return status
            if not self.proc.alive():
                raise DemoError(f"agent {self.label} exited: {self.proc.log_tail()}")
            if time.monotonic() > deadline:
                err = status.get("lastError") or {}
                raise DemoError(
                    f"agent {self.label}: federation not connected after {timeout:.0f}s "
                    f"(state {status.get('state')}, {err.get('code', '')} {err.get('message', '')})"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> str:
        return self.proc.stop(timeout)


# ---- the demo ----


@dataclass
class Demo:
    """The running demo. `start()` brings every part up in order; `stop()` tears all down."""

    root: Path
    keep: bool
    progress: Progress = print
    ports: dict[str, int] = field(default_factory=dict)
    spec: Spec | None = None
    console: Child | None = None
    replayer: Any = None  # seed.demo_log.LogReplayer
    agents: list[AgentProcess] = field(default_factory=list)
    console_password: str = ""
    token: str = ""
    seed_started: bool = False
    started_at: float = field(default_factory=time.monotonic)

    STEPS = 5

    def _step(self, n: int, what: str, text: str) -> None:
        self.progress(f"[{n}/{self.STEPS}] {what:<8} {text}")

    # -- start --

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ports = pick_ports()
        spec_path = self.root / SPEC_FILE
        spec_path.write_text(
            "# Generated by `seedctl demo` (ports are chosen at every start).\n"
            + yaml.safe_dump(demo_spec_data(self.ports), sort_keys=False),
            encoding="utf-8",
        )
        self.spec = load_spec(spec_path)
        for user in effective_users(self.spec):  # fresh credentials (kept with --data-dir)
            user_password(self.spec, user)
        # The console's login is the password of the secret named "console" (seed.console.auth).
        self.console_password = seed_secrets.password(self.spec.secrets_dir, CONSOLE_SECRET)
        token_file = self.spec.secrets_dir / "demo-api.token"
        if not token_file.exists():
            seed_secrets.write_private(token_file, _random.token_urlsafe(24) + "\n")
        self.token = token_file.read_text(encoding="utf-8").strip()

        self._start_seed()
        self._start_console()
        demo_user = self.spec.user(DEMO_USER)
        assert demo_user is not None  # demo_spec_data declares it
        creds = write_credentials_file(
            self.spec.secrets_dir / "demo-monitor.creds", DEMO_USER, user_password(self.spec, demo_user)
        )
        seed_urls = self.spec.client_urls
        log_dir = self.root / "node-a-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        a = AgentProcess(
            "A",
            self.root / "agent-a",
            self.ports["agent_a"],
            agent_env(
                data_dir=self.root / "agent-a",
                port=self.ports["agent_a"],
                seed_urls=seed_urls,
                credentials_file=creds,
                token=self.token,
                region="EU-WEST",
                broadcast=True,
                log_source="files",
                log_dir=log_dir,
            ),
        )
        b = AgentProcess(
            "B",
            self.root / "agent-b",
            self.ports["agent_b"],
            agent_env(
                data_dir=self.root / "agent-b",
                port=self.ports["agent_b"],
                seed_urls=seed_urls,
                credentials_file=creds,
                token=self.token,
                region="NA-EAST",
                broadcast=False,
            ),
        )
        for n, agent, role in ((3, a, "sharing the replayed sample node's tasks"), (4, b, "receiving")):
            self.agents.append(agent)
            agent.start()
            status = agent.wait_ready(timeout=40.0)
            self._step(
                n,
                f"agent {agent.label}",
                f"{agent.url} ready, federation {status.get('state')} as {status.get('nodeId')}, {role}",
            )
        known = self._b_total(b)  # with --data-dir, B remembers earlier runs' tasks
        # Started after the agents: children are forked while this process has no other thread.
        self._start_replayer(log_dir)
        self._wait_first_task(a, b, known)

    def _start_seed(self) -> None:
        assert self.spec is not None
        t0 = time.monotonic()
        self.seed_started = True
        states = lifecycle.up(self.spec, progress=lambda msg: None, timeout=20.0)
        s = states[0]
        self._step(
            1,
            "seed",
            f"{s.name} healthy in {time.monotonic() - t0:.1f}s: clients {s.client_url}, "
            f"monitoring {s.monitor_url}",
        )

    def _start_console(self) -> None:
        assert self.spec is not None
        argv = console_script("seedctl", "seed.cli") + ["console", "--spec", str(self.spec.path)]
        self.console = managed_process("console", argv, {}, self.root / "console.log")
        self.console.start()
        url = f"http://{HOST}:{self.ports['console']}"
        wait_http(f"{url}/healthz", self.console, 30.0, "console")
        self._step(2, "console", f"{url} ready")

    def _start_replayer(self, log_dir: Path) -> None:
        """The bundled sample node log, replayed into `log_dir` with realistic timing, forever.

        A thread of this process (stopped with it), writing the file agent A follows."""
        from .demo_log import LogReplayer

        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.replayer = LogReplayer(log_dir / f"worker-runner-node-{day}.log")
        self.replayer.start()

    @staticmethod
    def _b_total(b: AgentProcess) -> int:
        r = http_get(f"{b.url}/api/federation/tasks/global", params={"limit": 1}, timeout=2.0)
        return int(r.json().get("total", 0)) if r.status_code == 200 else 0

    def _wait_first_task(self, a: AgentProcess, b: AgentProcess, known: int, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            for agent in (a, b):
                if not agent.proc.alive():
                    raise DemoError(f"agent {agent.label} exited: {agent.proc.log_tail()}")
            r = http_get(f"{b.url}/api/federation/tasks/global", params={"limit": 1}, timeout=2.0)
            if r.status_code == 200 and r.json().get("total", 0) > known:
                task = r.json()["tasks"][0]
                self._step(
                    5,
                    "tasks",
                    f"first task from A reached B after {time.monotonic() - t0:.1f}s "
                    f"({task['taskId']}, {task['status']})",
                )
                return
            time.sleep(0.2)
        self._step(5, "tasks", f"no task from A reached B within {timeout:.0f}s yet (see {a.url})")

    # -- report --

    def summary(self) -> str:
        a, b = self.agents
        assert self.spec is not None
        server = self.spec.servers[0]
        kept = f"kept in {self.root}" if self.keep else f"in {self.root}, removed on exit"
        return "\n".join(
            [
                "",
                f"Ready in {time.monotonic() - self.started_at:.1f}s. State {kept}.",
                f"  Console   http://{HOST}:{self.ports['console']}   password: {self.console_password}",
                f"  Agent A   {a.url}   dashboard of the node replaying the sample log (shares tasks)",
                f"  Agent B   {b.url}   dashboard of a receive-only node (Network tab: A's tasks)",
                f"  Seed      {server.client_url}   monitoring {server.monitor_url}",
                f"  API token (settings, clear): {self.token}",
                "",
                f"Try:  curl -s {b.url}/api/federation/tasks/global?limit=5",
                f"      seedctl health --spec {self.spec.path}",
                "Press Ctrl-C to stop everything.",
            ]
        )

    # -- stop --

    def stop(self) -> None:
        """Stop every part (agents first, so they say goodbye to the federation); never raises."""
        for agent in reversed(self.agents):
            with contextlib.suppress(Exception):
                self.progress(f"agent {agent.label}: {agent.stop()}")
        if self.replayer is not None:
            with contextlib.suppress(Exception):
                self.replayer.stop()
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.progress(f"console: {self.console.stop(5.0)}")
        if self.seed_started and self.spec is not None:
            with contextlib.suppress(Exception):
                for name, how in lifecycle.down(self.spec, timeout=5.0, lame_duck=False).items():
                    self.progress(f"{name}: {how}")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def make_root(data_dir: Path | None) -> tuple[Path, bool]:
    """(state dir, keep it): `--data-dir` is kept; otherwise a private temp dir removed at exit."""
    if data_dir is not None:
        return data_dir.expanduser().resolve(), True
    return Path(tempfile.mkdtemp(prefix="seedctl-demo-")), False
