"""The monitor_agent role, converged for real by `seedctl deploy --playbook monitor` against a real
seed: two agents on this machine (process mode), one opted in to federation and one not."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from seed import deploy
from tests.plugins.tools import http_get

from .cluster import wait_until

pytestmark = [pytest.mark.ansible, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def agents(tmp_path, seed, port_factory):
    bin_dir = Path(sys.executable).parent
    hosts = {
        "node-a": {"monitor_enable_federation": True, "monitor_agent_region": "EU-WEST"},
        "node-b": {},  # federation left at its default: off
    }
    for name, hv in hosts.items():
        hv.update(monitor_agent_prefix=str(tmp_path / name), monitor_agent_port=port_factory())
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "monitor_agent_install_method": "none",
                "monitor_agent_bin": str(bin_dir / "monitor-agent"),
                "monitor_agent_create_user": False,
                "monitor_agent_service_mode": "process",
                "monitor_agent_node_log_source": "none",
                "monitor_agent_check_delay_s": 0.25,
            },
            "children": {"monitors": {"hosts": hosts}},
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    try:
        yield path, hosts
    finally:
        for name in hosts:
            pid_file = tmp_path / name / "var/lib/monitor-agent/monitor-agent.pid"
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, psutil.Error):
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGTERM)
                psutil.Process(pid).wait(20)


def _status(port: int) -> dict:
    return http_get(f"http://127.0.0.1:{port}/api/federation/status", timeout=5).json()


def test_monitor_playbook_installs_agents_with_opt_in_federation(seed, agents, tmp_path):
    inventory, hosts = agents
    lines: list[str] = []
    result = deploy.deploy(seed.spec, inventory, "monitor", out=lines.append)
    assert result.ok, "\n".join(lines)

    user, password = seed.credentials("monitor")
    env_a = tmp_path / "node-a/etc/monitor-agent/monitor-agent.env"
    creds_a = tmp_path / "node-a/etc/monitor-agent/federation.creds"
    assert env_a.stat().st_mode & 0o777 == 0o600
    assert creds_a.stat().st_mode & 0o777 == 0o600
    assert creds_a.read_text() == f"{user}:{password}\n"
    text = env_a.read_text()
    assert 'ENABLE_FEDERATION="true"' in text and f'FEDERATION_CREDENTIALS="{creds_a}"' in text
    assert f'FEDERATION_SEED_URL="{seed.url}"' in text
    assert password not in text  # the password lives only in the 0600 credentials file
    env_b = (tmp_path / "node-b/etc/monitor-agent/monitor-agent.env").read_text()
    assert 'ENABLE_FEDERATION="false"' in env_b

    port_a, port_b = hosts["node-a"]["monitor_agent_port"], hosts["node-b"]["monitor_agent_port"]
    assert http_get(f"http://127.0.0.1:{port_b}/api/health", timeout=5).status_code == 200
    assert _status(port_b)["enabled"] is False
    # the opted-in agent really joins the federation with the deployed credentials
    assert wait_until(lambda: _status(port_a).get("connected") is True, 20), _status(port_a)
    assert wait_until(
        lambda: http_get(seed.monitor_urls[0] + "/connz", timeout=5).json()["num_connections"] >= 1, 5
    )
