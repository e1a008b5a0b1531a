"""The operator's path on lab hosts: a seed spec and an Ansible inventory for a lab, a local
mirror of the nats-server release archive served from the bridge address (guests have no
internet), and `seedctl` run as a user runs it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seed import deploy
from seed.spec import Spec, load_spec
from tests.lab import PROJECT, Lab

NATS_VERSION = "2.15.1"
NODE_LOG_DIR = "/var/lib/node-logs"
SAMPLE_LOG = PROJECT / "tests/fixtures/node-logs/debug/debug-2024-01-16.log"
# Rewrites the sample log's timestamps onto the last 5 minutes (agents never share history older
# than 10 minutes), keeping the order and the relative spacing of its lines.
REPLAY = r"""
import datetime as d, re, sys
src, out = sys.argv[1], sys.argv[2]
lines = open(src).read().splitlines(keepends=True)
fmt = "%Y-%m-%d %H:%M:%S"
ts = [d.datetime.strptime(l[:19], fmt) if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", l) else None for l in lines]
known = [t for t in ts if t]
first, span = known[0], max((known[-1] - known[0]).total_seconds(), 1)
now = d.datetime.now(d.timezone.utc).replace(tzinfo=None)
with open(out, "w") as f:
    for line, t in zip(lines, ts):
        if t:
            line = (now - d.timedelta(seconds=300 * (1 - (t - first).total_seconds() / span))).strftime(fmt) + line[19:]
        f.write(line)
    if lines and not lines[-1].endswith(chr(10)):
        f.write(chr(10))  # the sample ends in a cut-off line: the next line appended starts its own
"""
# Appends a task_created line (the node received a task) to today's node log every 1/rate s until
# the stop file exists; prints each raw taskId written.
ACTIVITY = r"""
import datetime as d, json, os, sys, time, uuid
logdir, rate, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
node = "@truebit/worker-runner-node-0x5b2f8e3a9c41d07e6f1a2b3c4d5e6f708192a3b4:1.4.2"
n, t0 = 0, time.monotonic()
while not os.path.exists(stop):
    now = d.datetime.now(d.timezone.utc)
    tid = "api_" + uuid.uuid4().hex + uuid.uuid4().hex
    body = {"executionId": str(uuid.uuid4()), "taskId": tid, "taskPath": tid, "chainId": 43114, "blockNumber": 44750249 + n}
    with open(os.path.join(logdir, "debug-" + now.strftime("%Y-%m-%d") + ".log"), "a") as f:
        f.write(now.strftime("%Y-%m-%d %H:%M:%S") + " info: " + node + " Message received from task_created: " + json.dumps(body, separators=(",", ":")) + chr(10))
    print(tid, flush=True)
    n += 1
    time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
"""
CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT, AGENT_PORT = 4222, 6222, 8222, 8090


class Mirror:
    """A release-archive mirror on the bridge address (what an operator without internet does)."""

    def __init__(self, lab: Lab, root: Path, nats_server_bin: str):
        root.mkdir(parents=True, exist_ok=True)
        name = f"nats-server-v{NATS_VERSION}-linux-amd64"
        self.archive = root / f"{name}.tar.gz"
        if not self.archive.exists():
            with tarfile.open(self.archive, "w:gz") as tar:
                tar.add(nats_server_bin, arcname=f"{name}/nats-server")
        self.checksum = "sha256:" + hashlib.sha256(self.archive.read_bytes()).hexdigest()
        # The project and its dependencies as wheels: the agents' pip installs from here.
        wheels = root / "wheels"
        if not any(wheels.glob("truebit_federation-*.whl")):
            r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", str(PROJECT), "-w", str(wheels)],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"pip wheel of the project failed: {r.stderr.strip()[-500:]}")
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer((lab.gateway, 0), handler)
        base = f"http://{lab.gateway}:{self.server.server_address[1]}"
        self.url = f"{base}/{self.archive.name}"
        self.wheels_url = f"{base}/wheels/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - no request log on stderr
        pass


def spec_data(lab: Lab, seeds: list[str]) -> dict:
    servers = [
        {
            "name": name,
            "host": lab.host(name).address,
            "client_port": CLIENT_PORT,
            "cluster_port": CLUSTER_PORT,
            # Monitoring on loopback only (it lists every client's address): this machine reads the
            # seeds through the system account (`seedctl health --via nats`), tests over SSH.
            "monitor_host": "127.0.0.1",
            "monitor_port": MONITOR_PORT,
        }
        for name in seeds
    ]
    return {
        "name": "tbfed-lab",
        "cluster": {"name": "tbfed-lab-seeds"},
        "servers": servers,
        "users": [{"name": "admin", "role": "admin"}, {"name": "monitor", "role": "monitor"}],
        # Seeds ping clients and routes every 5 s (default 20): a partition or a dead agent is
        # noticed in 10-15 s instead of 40-60 s, which is what the lab's fault tests wait for.
        "limits": {"lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1, "ping_interval_s": 5},
        # The seeds keep the task events (JetStream R3): an agent cut off catches up (issue 16).
        "history": {"max_age": "1h", "max_bytes": "64MiB", "replicas": "auto"},
        "secrets_dir": "secrets",
        "state_dir": "state",
        "rendered_dir": "rendered",
    }


@dataclass
class Fleet:
    lab: Lab
    root: Path
    mirror: Mirror
    seeds: list[str]
    monitors: list[str]
    data: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def spec_path(self) -> Path:
        return self.root / "seed.yaml"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def spec(self) -> Spec:
        return load_spec(self.spec_path)

    def write(self) -> None:
        self.spec_path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        inv = self.lab.inventory({"nats_seeds": self.seeds, "monitors": self.monitors})
        inv["all"]["children"]["nats_seeds"]["vars"] = {
            "nats_seed_service_mode": "systemd",
            "nats_seed_install_method": "tarball",
            "nats_seed_tarball_url": self.mirror.url,
            "nats_seed_tarball_checksum": self.mirror.checksum,
            "nats_seed_check_delay_s": 0.25,
        }
        inv["all"]["children"]["monitors"]["vars"] = {
            "monitor_agent_service_mode": "systemd",
            "monitor_agent_check_delay_s": 0.25,
            "monitor_enable_federation": True,
            # The sample node's debug log, replayed with fresh timestamps, is the node log source.
            "monitor_agent_node_log_source": "files",
            "monitor_agent_node_log_dir": NODE_LOG_DIR,
            "monitor_agent_port": AGENT_PORT,
            "monitor_agent_api_token": "lab-token-not-secret",
        }
        for name in self.monitors:  # the API on the lab address, so this machine can read it
            inv["all"]["hosts"][name]["monitor_agent_host"] = self.lab.host(name).address
        self.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))

    def rewrite(self, **changes) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.write()

    def seedctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The real CLI, as an operator runs it (output kept in the result)."""
        argv = [str(Path(sys.executable).parent / "seedctl"), *args]
        if args and args[0] in ("deploy", "health", "render", "check", "users"):
            argv[2:2] = ["--spec", str(self.spec_path)]
        if args and args[0] == "deploy":
            argv += ["-i", str(self.inventory)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def deploy(self, playbook: str = "seed", **kwargs) -> deploy.DeployResult:
        self.lines.clear()
        return deploy.deploy(self.spec, self.inventory, playbook, out=self.lines.append, **kwargs)

    def output(self) -> str:
        return "\n".join(self.lines)

    def unit_show(self, host: str, *props: str, unit: str = "nats-seed") -> dict[str, str]:
        out = self.lab.ssh(host, f"systemctl show {unit} -p {','.join(props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, host: str, unit: str = "nats-seed") -> int:
        return int(self.unit_show(host, "MainPID", unit=unit)["MainPID"])

    def client_url(self, host: str) -> str:
        return f"nats://{self.lab.host(host).address}:{CLIENT_PORT}"

    def traffic(self, rate: float = 20.0, user: str = "admin", member=None):
        """Live traffic: published via the seeds in spec order, received via lab2 and via lab3.
        With `member` (a monitor_agent Identity): signed federation task events the agents store."""
        from seed.users import effective_users, user_password
        from tests.lab.traffic import Traffic

        spec = self.spec
        users = effective_users(spec)
        u = next((u for u in users if u.name == user), None) or next(
            u for u in users if user == "monitor" and u.role == "monitor" and u.auth == "password")
        urls = [self.client_url(n) for n in self.seeds]
        receivers = {f"via-{self.seeds[i]}": urls[i:] + urls[:i] for i in (1, 2)}
        agents = {n: self.agent_url(n) for n in self.monitors}
        # The monitor user the agents have now (`monitor`, or its successor after a rotation).
        mon = next(u for u in effective_users(spec) if u.role == "monitor" and u.auth == "password")
        return Traffic(urls, receivers, user, user_password(spec, u, create=False), rate, agents,
                       agent_auth={"user": mon.name, "password": user_password(spec, mon, create=False)},
                       member=member)

    def monitor(self, host: str, path: str, timeout: float = 5) -> dict | None:
        """A seed's monitoring endpoint as JSON, read on the host itself (it listens on loopback
        only); None when it does not answer."""
        port = next(s["monitor_port"] for s in self.data["servers"] if s["name"] == host)  # a test may move it
        r = self.lab.ssh(host, f"curl -sf -m {timeout:g} http://127.0.0.1:{port}{path}",
                         check=False, timeout=timeout + 15)
        try:
            return json.loads(r.stdout) if r.returncode == 0 else None
        except ValueError:
            return None

    def seed_of(self, host: str) -> str | None:
        """The seed the given lab host holds a client connection to (from each seed's /connz)."""
        addr = self.lab.host(host).address
        for name in self.seeds:
            conns = (self.monitor(name, "/connz", timeout=2) or {}).get("connections") or []
            if any(c.get("ip") == addr for c in conns):
                return name
        return None

    @contextlib.contextmanager
    def node_activity(self, hosts: list[str], rate: float = 5.0):
        """New tasks in each host's node log at `rate` per second while the block runs (a node at
        work), so the agents publish events of their own; yields {host: [raw taskIds written]}."""
        written: dict[str, list[str]] = {}
        procs = {}
        stop = "/run/tblab-activity-stop"
        for host in hosts:
            self.lab.ssh(host, f"rm -f {stop}")
            procs[host] = subprocess.Popen(
                self.lab.ssh_argv(host, f"python3 -c '{ACTIVITY}' {NODE_LOG_DIR} {rate} {stop}"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield written
        finally:
            for host, proc in procs.items():
                self.lab.ssh(host, f"touch {stop}", check=False)
                out, _err = proc.communicate(timeout=30)
                written[host] = out.split()

    def agent_url(self, host: str) -> str:
        return f"http://{self.lab.host(host).address}:{AGENT_PORT}"



def use_mirror_for_pip(lab: Lab, host: str, mirror: Mirror) -> None:
    """Point the host's pip at the mirror's wheels only (lab hosts have no internet)."""
    conf = f"[global]\nno-index = true\nfind-links = {mirror.wheels_url}\ntrusted-host = {lab.gateway}\n"
    lab.ssh(host, f"rm -f /etc/xdg/pip/pip.conf && printf '{conf}' > /etc/pip.conf")


def replay_sample_log(lab: Lab, host: str) -> None:
    """The sample node's debug log, freshly stamped, in NODE_LOG_DIR on the host."""
    script = REPLAY.replace("'", "'\"'\"'")
    lab.ssh(host, f"mkdir -p {NODE_LOG_DIR} && python3 -c '{script}' {SAMPLE_LOG} "
                  f"{NODE_LOG_DIR}/debug-$(date -u +%F).log && chmod -R a+rX {NODE_LOG_DIR}")


def make_fleet(lab: Lab, root: Path, nats_server_bin: str, seeds=("lab1", "lab2", "lab3"), monitors=("lab4", "lab5")) -> Fleet:
    root.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(lab, root, Mirror(lab, root / "mirror", nats_server_bin), list(seeds), list(monitors))
    for name in fleet.monitors:
        use_mirror_for_pip(lab, name, fleet.mirror)
    fleet.data = spec_data(lab, fleet.seeds)
    fleet.write()
    return fleet
