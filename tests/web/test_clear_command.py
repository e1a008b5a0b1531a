"""`monitor-agent clear-federation-data`: through a running agent, or straight in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitor_agent import runfile
from monitor_agent.config import load_config
from monitor_agent.store import Store

from .conftest import add_federation_tasks, add_peer

MONITOR_AGENT = str(Path(sys.executable).parent / "monitor-agent")


def run_clear(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))}
    full.update(env)
    return subprocess.run(
        [MONITOR_AGENT, "clear-federation-data", *args], env=full, input=input, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip


def test_clear_through_the_running_agent(seeded_agent):
    a = seeded_agent
    # This test process serves the agent: record it as `monitor-agent run`'s worker does.
    runfile.write(a.config.data_dir, "127.0.0.1", a.port)
    env = {"DATA_DIR": str(a.config.data_dir), "MONITOR_API_TOKEN": a.token}
    refused = run_clear(env, input="n\n")
    assert refused.returncode == 1 and a.get("/api/federation/tasks/global").json()["total"] == 30
    r = run_clear(env, "--yes")
    assert r.returncode == 0, r.stderr
    assert "Deleted 30 federation tasks and 2 peers through the running agent" in r.stdout
    assert a.get("/api/federation/tasks/global").json()["total"] == 0
    assert a.get("/api/federation/peers").json()["total"] == 0, "the live view changed too"
    assert a.get("/api/tasks").json()["total"] == 3


def test_clear_in_the_database_when_no_agent_runs(agent_factory, port_factory):
    a = agent_factory()
    add_federation_tasks(a.agent, [{"task_id": f"global-task-{i:012x}"} for i in range(7)])
    add_peer(a.agent, "node-cccccccccc")
    data_dir = a.config.data_dir
    a.stop()
    env = {"DATA_DIR": str(data_dir), "MONITOR_PORT": str(port_factory())}
    r = run_clear(env, "-y")
    assert r.returncode == 0, r.stderr
    assert "Deleted 7 federation tasks and 1 peer in the database" in r.stdout
    store = Store(load_config(env).db_path, start_writer=False)
    try:
        assert store.query_federation_tasks(10)[1] == 0 and store.list_peers() == []
    finally:
        store.close()
