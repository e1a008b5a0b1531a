"""Monitors over SSH: monitor.yml installs hardened agents on lab4-5 with federation on against
the three seeds, the sample node's logs as source; each sees the other's tasks."""

from __future__ import annotations

import httpx
import pytest

from tests.plugins.tools import http_get, wait_for

pytestmark = pytest.mark.timeout(600)


def test_agents_run_hardened_with_federation_and_share_tasks(monitors):
    fleet = monitors
    status = {}
    for name in fleet.monitors:
        props = fleet.unit_show(name, "ActiveState", "User", "NoNewPrivileges", "ProtectSystem", unit="monitor-agent")
        assert props == {"ActiveState": "active", "User": "monitor-agent", "NoNewPrivileges": "yes",
                         "ProtectSystem": "strict"}, (name, props)
        status[name] = wait_for(lambda n=name: _connected(fleet, n), timeout=60, what=f"{name} federation CONNECTED")
    node4 = status["lab4"]["nodeId"]
    # Host 5's API lists host 4 as a peer and holds host 4's task events.
    wait_for(lambda: node4 in {p["nodeId"] for p in http_get(fleet.agent_url("lab5") + "/api/federation/peers", timeout=5).json()["peers"]},
             timeout=60, what="lab4 among lab5's peers")
    tasks = wait_for(lambda: http_get(fleet.agent_url("lab5") + "/api/federation/tasks/global?limit=500", timeout=5).json()["tasks"],
                     timeout=60, what="tasks on lab5")
    assert any(t.get("sourceNode") == node4 for t in tasks), tasks[:3]
    # DATA_DIR persists on the host, owned by the agent's user.
    out = fleet.lab.ssh("lab4", "stat -c %U /var/lib/monitor-agent && ls /var/lib/monitor-agent").stdout.split()
    assert out[0] == "monitor-agent" and any(f.endswith(".db") or f.endswith(".sqlite") for f in out[1:]), out


def _connected(fleet, name):
    try:
        s = http_get(fleet.agent_url(name) + "/api/federation/status", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return s if s.get("state") == "CONNECTED" or s.get("connected") is True else None
