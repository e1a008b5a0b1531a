"""A seed cluster converged by the nats_seed role on localhost: three inventory hosts, each with
its own prefix and ports, `process` service mode, the venv's nats-server, no become."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml

from seed import deploy
from seed.spec import Spec, load_spec
from seed.users import effective_users, user_password
from tests.plugins.seed import build_spec_data
from tests.plugins.tools import http_get, unique_ports


def inventory_data(root: Path, names: list[str], nats_server_bin: str) -> dict:
    """Every host is this machine; each gets its own prefix (config, state, log dirs)."""
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nats_seed_install_method": "none",
        "nats_seed_bin": nats_server_bin,
        "nats_seed_create_user": False,
        "nats_seed_service_mode": "process",
        "nats_seed_check_delay_s": 0.25,
    }
    hosts = {name: {"nats_seed_prefix": str(root / "hosts" / name)} for name in names}
    return {"all": {"vars": common, "children": {"nats_seeds": {"hosts": hosts}}}}


@dataclass
class Cluster:
    root: Path
    spec_path: Path
    inventory: Path
    data: dict
    spec: Spec
    lines: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.spec.names

    def host_dir(self, name: str) -> Path:
        return self.root / "hosts" / name

    def config_file(self, name: str) -> Path:
        return self.host_dir(name) / "etc" / "nats-seed" / "nats-server.conf"

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.host_dir(name) / "var/lib/nats-seed/nats-server.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def process_start(self, name: str) -> tuple[int, float]:
        pid = self.pid(name)
        assert pid, f"{name} is not running"
        return pid, psutil.Process(pid).create_time()

    def monitor_url(self, name: str) -> str:
        return self.spec.server(name).monitor_url

    def varz(self, name: str) -> dict:
        return http_get(self.monitor_url(name) + "/varz", timeout=5).json()

    def healthy(self, name: str, timeout: float = 1.0) -> bool:
        try:
            r = http_get(self.monitor_url(name) + "/healthz", timeout=timeout)
            return r.status_code == 200 and r.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def url_for(self, user: str, name: str) -> str:
        u = next(u for u in effective_users(self.spec) if u.name == user)
        s = self.spec.server(name)
        return f"nats://{user}:{user_password(self.spec, u, create=False)}@{s.client_host}:{s.client_port}"

    def rewrite(self, **changes) -> Spec:
        """Change top-level spec keys on disk and load it again (None removes a key)."""
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.spec_path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        self.spec = load_spec(self.spec_path)
        return self.spec

    def deploy(self, playbook: str = "seed", **kwargs) -> deploy.DeployResult:
        self.lines.clear()
        return deploy.deploy(self.spec, self.inventory, playbook, out=self.lines.append, **kwargs)

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop_all(self) -> None:
        """Stop every server the role started (teardown; also after a failed test)."""
        pids = [pid for pid in (self.pid(n) for n in self.names) if pid]
        for pid in pids:  # signal all first: they shut down in parallel
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                psutil.Process(pid).wait(10)


def make_cluster(root: Path, nats_server_bin: str, servers: int = 3) -> Cluster:
    data = build_spec_data(unique_ports(), servers=servers)
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "seed.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(spec_path)
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump(inventory_data(root, spec.names, nats_server_bin), sort_keys=False))
    return Cluster(root, spec_path, inventory, data, spec)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
