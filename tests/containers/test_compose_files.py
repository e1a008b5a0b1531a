"""The compose files of configs/: valid Compose, and true to the seed documentation's Quick Start.

Docker cannot run on the CI machine, so these read the files the way `docker compose` would
(interpolation, then the Compose Specification schema) and check them against the agent's own
config loader."""

from __future__ import annotations

import copy
import re
import subprocess

import pytest

from monitor_agent.config import ENV_VARIABLES, load_config

from .compose import (
    MONITOR_COMPOSE,
    SEED_COMPOSE,
    environment,
    errors,
    interpolate,
    load,
    load_raw,
    variables,
)

# Variables the compose files read for compose itself (never passed into the container).
COMPOSE_ONLY_VARIABLES = {
    MONITOR_COMPOSE.name: {"MONITOR_IMAGE", "MONITOR_HOST_PORT", "DOCKER_GID", "DOCKER_SOCKET"},
    SEED_COMPOSE.name: {
        "NATS_IMAGE",
        "SEED_NAME",
        "SEED_UID",
        "SEED_GID",
        "SEED_CONFIG",
        "SEED_TLS_DIR",
        "SEED_MONITOR_PORT",
    },
}


@pytest.mark.parametrize("path", [MONITOR_COMPOSE, SEED_COMPOSE], ids=lambda p: p.name)
@pytest.mark.parametrize("env", [{}, {"ENABLE_FEDERATION": "true"}], ids=["defaults", "federation"])
def test_compose_file_is_valid_compose(path, env):
    assert errors(load(path, env)) == []


def test_schema_rejects_what_compose_rejects():
    """The validation has teeth: typical mistakes in a compose file are reported with their path."""
    doc = load(MONITOR_COMPOSE)
    typo = copy.deepcopy(doc)
    typo["services"]["monitor"]["enviroment"] = typo["services"]["monitor"].pop("environment")
    assert any("enviroment" in e for e in errors(typo))

    bad_duration = copy.deepcopy(doc)
    bad_duration["services"]["monitor"]["stop_grace_period"] = "fifteen seconds"
    assert any(e.startswith("services/monitor/stop_grace_period") for e in errors(bad_duration))

    bad_port = copy.deepcopy(doc)
    bad_port["services"]["monitor"]["ports"] = ["127.0.0.1:eighty:8090"]
    assert any(e.startswith("services/monitor/ports") for e in errors(bad_port))


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|$$SET|$SET", env) == "x|d||d|$SET|x"


@pytest.mark.parametrize("path", [MONITOR_COMPOSE, SEED_COMPOSE], ids=lambda p: p.name)
def test_every_variable_is_one_the_agent_or_compose_knows(path):
    raw = load_raw(path)
    known = set(ENV_VARIABLES) | COMPOSE_ONLY_VARIABLES[path.name]
    assert variables(raw) - known == set()
    for service in raw["services"].values():
        unknown = set(environment(service)) - set(ENV_VARIABLES)
        assert unknown == set(), f"{path.name} sets variables the agent does not read: {sorted(unknown)}"


def _monitor_service(env=None):
    return load(MONITOR_COMPOSE, env)["services"]["monitor"]


def test_monitor_environment_is_a_valid_agent_config_with_federation_off_by_default():
    config = load_config(environment(_monitor_service()), apply_settings=False)
    assert config.enable_federation is False
    assert str(config.db_path) == "/app/data/truebit-monitor.db"
    assert config.node_log_source == "docker"
    assert config.docker_host == "unix:///var/run/docker.sock"
    assert config.node_container == "runner-node"


def test_quick_start_enable_federation_true_turns_federation_on():
    """`ENABLE_FEDERATION=true docker compose -f docker-compose.monitor.yml up -d`."""
    config = load_config(environment(_monitor_service({"ENABLE_FEDERATION": "true"})), apply_settings=False)
    assert config.enable_federation is True
    assert config.seed_urls == ("nats://federation.truebit.monitor:4222",)


def test_documented_overrides_reach_the_agent():
    """The seed documentation's "Method 3" and "Receive only" settings pass through unchanged."""
    env = {
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": "nats://monitor:pw@my-nats-server:4222",
        "FEDERATION_NODE_ID": "my-custom-node-id",
        "FEDERATION_BROADCAST_TASKS": "false",
        "FEDERATION_BROADCAST_STATS": "false",
        "FEDERATION_RECEIVE_ENABLED": "true",
        "FEDERATION_TASK_RETENTION_DAYS": "14",
    }
    config = load_config(environment(_monitor_service(env)), apply_settings=False)
    assert config.seed_urls == ("nats://monitor:pw@my-nats-server:4222",)
    assert config.node_id == "my-custom-node-id"
    assert (config.broadcast_tasks, config.broadcast_stats, config.receive_enabled) == (False, False, True)
    assert config.task_retention_days == 14


def test_monitor_mounts_docker_socket_read_only_and_data_volume():
    service = _monitor_service()
    mounts = {}
    for item in service["volumes"]:
        source, target, *mode = item.split(":")
        mounts[target] = (source, mode)
    assert mounts["/var/run/docker.sock"] == ("/var/run/docker.sock", ["ro"])
    data_source, data_mode = mounts["/app/data"]
    assert data_mode == []
    assert data_source in load(MONITOR_COMPOSE)["volumes"], "the data volume must be a named volume"


def test_monitor_dashboard_is_published_on_loopback_only():
    ports = _monitor_service()["ports"]
    assert ports == ["127.0.0.1:8090:8090"]
    assert _monitor_service({"MONITOR_HOST_PORT": "9000"})["ports"] == ["127.0.0.1:9000:8090"]


def test_monitor_container_is_locked_down():
    service = _monitor_service()
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["container_name"] == "truebit-node-monitor"  # the name the documented commands use


def _seed_service(env=None):
    return load(SEED_COMPOSE, env)["services"]["seed"]


def test_seed_runs_the_rendered_config_read_only():
    assert _seed_service()["volumes"][0] == "./rendered/seed-1/nats-server.conf:/etc/nats/nats-server.conf:ro"
    service = _seed_service({"SEED_CONFIG": "./rendered/seed-2/nats-server.conf", "SEED_TLS_DIR": "/srv/tls"})
    config_mounts = [v for v in service["volumes"] if v.endswith(":/etc/nats/nats-server.conf:ro")]
    assert config_mounts == ["./rendered/seed-2/nats-server.conf:/etc/nats/nats-server.conf:ro"]
    assert "/srv/tls:/srv/tls:ro" in service["volumes"]
    assert service["command"] == ["--config", "/etc/nats/nats-server.conf"]
    assert service["network_mode"] == "host"
    assert all(v.endswith(":ro") for v in service["volumes"])


def test_seed_image_is_the_nats_server_version_seedctl_validates_with(nats_server_bin):
    out = subprocess.run([nats_server_bin, "--version"], capture_output=True, text=True, check=True).stdout
    local = re.search(r"v(\d+\.\d+\.\d+)", out).group(1)
    image = _seed_service()["image"]
    assert image.startswith(f"nats:{local}"), f"image {image} but `seedctl check` uses nats-server {local}"


def test_seed_stops_in_lame_duck_mode_within_its_grace_period():
    service = _seed_service()
    assert service["stop_signal"] == "SIGUSR2"
    grace = int(service["stop_grace_period"].rstrip("s"))
    from seed.spec import Limits

    assert grace > Limits().lame_duck_duration_s + Limits().lame_duck_grace_period_s


def test_seed_compose_default_config_is_where_seedctl_render_writes_it():
    """`cd configs && seedctl render --spec seed.example.yaml` then `docker compose ... up` needs no variable."""
    from seed.render import CONF_NAME
    from seed.spec import load_spec

    spec = load_spec(SEED_COMPOSE.parent / "seed.example.yaml")
    expected = spec.rendered_dir / spec.servers[0].name / CONF_NAME
    source = _seed_service()["volumes"][0].split(":")[0]
    assert (SEED_COMPOSE.parent / source).resolve() == expected.resolve()
