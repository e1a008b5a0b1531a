"""The agent image, built and run for real with podman: locked down the way the compose file runs
it (read-only root filesystem, every capability dropped, uid 10001), healthy, its data volume
surviving restarts, stopping cleanly on SIGTERM, and saying in one line why it cannot read the
Docker socket."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import RawNats
from tests.plugins.tools import http_get, wait_for

# Generous: the first test of a run also builds the images (a cold base is debootstrap + apt + pip).
pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

SAMPLE_LOG = Path(__file__).resolve().parents[2] / "seed" / "data" / "sample-node.log"
LOCKED_DOWN = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def _health(port: int) -> bool:
    try:
        return http_get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


TOKEN = uuid.uuid4().hex * 2


def _tasks(port: int) -> dict:
    """This node's tasks with their private fields (executionId): the API token is given."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    return http_get(f"http://127.0.0.1:{port}/api/tasks?limit=1000", headers=auth, timeout=5).json()


def test_image_is_slim_non_root_and_health_checked(podman, agent_image):
    info = json.loads(podman("image", "inspect", agent_image).stdout)[0]
    assert info["Config"]["User"] == "10001:10001"
    assert info["Healthcheck"]["Test"][:2] == ["CMD", "python"]  # kept: built --format docker
    assert info["Config"]["Entrypoint"] == ["monitor-agent"]
    assert info["Size"] < 250_000_000, f"image is {info['Size'] / 1e6:.0f} MB"
    # The agent install carries none of the seed toolkit.
    proc = podman("run", "--rm", "--entrypoint", "python", agent_image, "-c",
                  "import importlib.util as u; print([m for m in ('ansible', 'bcrypt', 'yaml') if u.find_spec(m)])")  # fmt: skip
    assert proc.stdout.strip() == "[]"


def test_locked_down_container_is_healthy_and_its_volume_survives_a_restart(
    podman, agent_image, port_factory, tmp_path
):
    logs = tmp_path / "node-logs"
    logs.mkdir()
    shutil.copy(SAMPLE_LOG, logs / "runner-2024-01-15.log")
    port = port_factory()
    name = f"tb-agent-{uuid.uuid4().hex[:8]}"
    volume = podman.volume(f"tb-data-{uuid.uuid4().hex[:8]}")
    podman.run(agent_image, name=name, options=(
        *LOCKED_DOWN, "-p", f"127.0.0.1:{port}:8090", "-v", f"{volume}:/app/data",
        "-v", f"{logs}:/node-logs:ro", "-e", "NODE_LOG_SOURCE=files", "-e", "NODE_LOG_DIR=/node-logs",
        "-e", f"MONITOR_API_TOKEN={TOKEN}",
    ))  # fmt: skip
    wait_for(lambda: _health(port), timeout=60, interval=0.2, what="/api/health through the published port")
    assert podman("healthcheck", "run", name, check=False).returncode == 0  # the image's HEALTHCHECK
    status = podman("exec", name, "sh", "-c", "id -u; grep CapEff /proc/1/status").stdout.split()
    assert status[0] == "10001"
    assert status[-1] == "0000000000000000", "the agent must run with no capabilities"
    assert podman("exec", name, "touch", "/app/x", check=False).returncode != 0  # read-only root fs

    before = wait_for(lambda: (t := _tasks(port))["total"] and t, timeout=30, what="the sample log's tasks")
    node_id = http_get(f"http://127.0.0.1:{port}/api/federation/status", timeout=5).json()["nodeId"]

    podman("restart", "-t", "15", name)
    wait_for(lambda: _health(port), timeout=60, interval=0.2, what="/api/health after the restart")
    time.sleep(1)  # the source has re-opened its files: nothing may be read twice
    after = _tasks(port)
    assert after["total"] == before["total"]
    assert sorted(t["executionId"] for t in after["tasks"]) == sorted(
        t["executionId"] for t in before["tasks"]
    )
    assert http_get(f"http://127.0.0.1:{port}/api/federation/status", timeout=5).json()["nodeId"] == node_id
    check = podman("exec", name, "sqlite3", "/app/data/truebit-monitor.db", "PRAGMA integrity_check;")
    assert check.stdout.strip() == "ok"


def test_sigterm_stops_it_cleanly_and_the_federation_hears_node_offline(
    podman, agent_image, seed, port_factory
):
    listener = RawNats(seed.url_for("observer"))
    try:
        listener.capture("tbfed.v1.presence.>")
        port = port_factory()
        name = f"tb-agent-{uuid.uuid4().hex[:8]}"
        podman.run(agent_image, name=name, options=(
            *LOCKED_DOWN, "--network", "host", "-e", f"MONITOR_PORT={port}", "-e", "MONITOR_HOST=127.0.0.1",
            "-e", "NODE_LOG_SOURCE=none", "-e", "ENABLE_FEDERATION=true",
            "-e", f"FEDERATION_SEED_URL={seed.url_for('monitor')}",
        ))  # fmt: skip
        status = f"http://127.0.0.1:{port}/api/federation/status"

        def connected():
            try:
                return http_get(status, timeout=2).json()["connected"]
            except (httpx.HTTPError, ValueError):
                return False

        wait_for(connected, timeout=60, interval=0.2, what="the containerised agent to join the seed")
        node_id = http_get(status, timeout=5).json()["nodeId"]

        started = time.monotonic()
        podman("stop", "-t", "15", name)  # SIGTERM, then SIGKILL after 15 s
        took = time.monotonic() - started
        state = podman.inspect(name)["State"]
        assert state["ExitCode"] == 0, podman.logs(name)[-2000:]
        assert took < 10, f"stopping took {took:.1f} s (SIGKILL comes at 15 s)"
        assert "agent stopped cleanly" in podman.logs(name)

        def offline():
            return [
                json.loads(d) for s, d, _ in list(listener.captured) if s == f"tbfed.v1.presence.{node_id}"
            ]

        events = wait_for(lambda: [m["event"] for m in offline()], what="presence messages")
        wait_for(lambda: "node_offline" in [m["event"] for m in offline()], what="node_offline")
        assert events[0] != "node_offline" or len(events) > 1
    finally:
        listener.close()


def test_socket_without_its_group_is_one_clear_line_and_with_docker_gid_it_is_read(
    podman, agent_image, engine_api, node_container, port_factory
):
    """As on a Docker host: the socket is root:<docker group> 0660; the agent (uid 10001) needs that group."""
    gid = 4242
    subprocess.run(["chgrp", str(gid), str(engine_api.path)], check=True)
    engine_api.path.chmod(0o660)
    node = node_container()
    node.write("2024-01-15 10:00:00 info: node started\n")

    def agent(*extra: str) -> tuple[str, int]:
        port = port_factory()
        name = f"tb-agent-{uuid.uuid4().hex[:8]}"
        podman.run(agent_image, name=name, options=(
            *LOCKED_DOWN, "--network", "host", "-e", f"MONITOR_PORT={port}", "-e", "MONITOR_HOST=127.0.0.1",
            "-v", f"{engine_api.path}:/var/run/docker.sock:ro", "-e", f"NODE_CONTAINER={node.name}", *extra,
        ))  # fmt: skip
        wait_for(lambda: _health(port), timeout=60, interval=0.2, what="/api/health")
        return name, port

    refused, _ = agent()
    time.sleep(5)  # two more retries (every 2 s): still one line
    lines = [ln for ln in podman.logs(refused).splitlines() if "docker.sock" in ln]
    assert len(lines) == 1, lines
    assert "permission denied on the Docker socket /var/run/docker.sock" in lines[0]
    assert f"DOCKER_GID={gid}" in lines[0]

    allowed, _ = agent("--group-add", str(gid))
    wait_for(lambda: f"following container {node.name}" in podman.logs(allowed), timeout=30,
             what="the agent following the node's logs")  # fmt: skip
    assert "permission denied" not in podman.logs(allowed)
