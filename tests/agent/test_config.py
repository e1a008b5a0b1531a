"""The agent's one config loader: documented defaults, one-line refusals, settings precedence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor_agent.config import ENV_VARIABLES, load_config, redact_url, save_settings
from monitor_agent.errors import ConfigError


def test_defaults_are_the_seed_documentations_exactly(tmp_path):
    c = load_config({"DATA_DIR": str(tmp_path)})
    assert c.enable_federation is False  # opt-in only
    assert c.seed_urls == ("nats://federation.truebit.monitor:4222",)
    assert (c.broadcast_tasks, c.broadcast_stats, c.receive_enabled) == (True, True, True)
    assert (c.task_retention_days, c.reconnect_timeout_ms, c.broadcast_interval_ms) == (7, 5000, 1000)
    assert c.tls_enabled is False and c.require_signatures is True and c.privacy == "standard"
    assert (c.monitor_host, c.monitor_port) == ("127.0.0.1", 8090)
    documented = {
        "ENABLE_FEDERATION", "FEDERATION_SEED_URL", "FEDERATION_NODE_ID", "FEDERATION_BROADCAST_TASKS",
        "FEDERATION_BROADCAST_STATS", "FEDERATION_RECEIVE_ENABLED", "FEDERATION_TASK_RETENTION_DAYS",
        "FEDERATION_RECONNECT_TIMEOUT", "FEDERATION_BROADCAST_INTERVAL_MS", "FEDERATION_TLS_ENABLED",
        "FEDERATION_CREDENTIALS", "FEDERATION_TLS_CA", "FEDERATION_REGION", "FEDERATION_SUBJECT_PREFIX",
        "FEDERATION_REQUIRE_SIGNATURES", "FEDERATION_PRIVACY", "FEDERATION_DEBUG", "MONITOR_PORT",
        "MONITOR_API_TOKEN", "DATA_DIR",
    }  # fmt: skip
    assert documented <= set(ENV_VARIABLES)


@pytest.mark.parametrize(
    ("var", "value", "expect"),
    [
        ("ENABLE_FEDERATION", "maybe", "true or false"),
        ("MONITOR_PORT", "abc", "integer from 1 to 65535"),
        ("MONITOR_PORT", "70000", "integer from 1 to 65535"),
        ("FEDERATION_TASK_RETENTION_DAYS", "0", "integer from 1 to 3650"),
        ("FEDERATION_SEED_URL", "http://seed:4222", "nats://"),
        ("FEDERATION_SEED_URL", "nats://u:pw@[::1", "nats://"),
        ("FEDERATION_NODE_ID", "Bad_Id!", "FED_005"),
        ("FEDERATION_REGION", "MARS", "one of NA-EAST"),
        ("FEDERATION_PRIVACY", "paranoid", "standard, strict"),
        ("NODE_LOG_SOURCE", "syslog", "docker, files, none"),
        ("FEDERATION_CREDENTIALS", "/nonexistent/creds", "existing"),
    ],
)
def test_a_malformed_value_is_one_line_naming_variable_value_and_what_is_allowed(
    tmp_path, var, value, expect
):
    with pytest.raises(ConfigError) as err:
        load_config({"DATA_DIR": str(tmp_path), var: value})
    message = str(err.value)
    assert "\n" not in message and var in message and expect in message
    assert "pw" not in message  # a password in a bad URL is never echoed


def test_redacting_never_echoes_a_password_even_from_a_broken_url():
    assert redact_url("nats://monitor:s3cret@seed:4222") == "nats://monitor:***@seed:4222"
    assert "s3cret" not in redact_url("nats://monitor:s3cret@[::1")


def test_settings_saved_through_the_api_override_the_environment(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "ENABLE_FEDERATION": "false", "FEDERATION_BROADCAST_STATS": "true"}
    save_settings(tmp_path, {"enabled": True, "broadcastStats": False})
    c = load_config(env)
    assert c.enable_federation is True and c.broadcast_stats is False
    assert load_config(env, apply_settings=False).enable_federation is False
    (Path(tmp_path) / "settings.json").write_text("{not json")  # a damaged file is ignored, not fatal
    assert load_config(env).enable_federation is False
    with pytest.raises(ValueError, match="unknown settings"):
        save_settings(tmp_path, {"wallet": True})


def test_run_stops_at_start_up_with_one_line_and_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "MONITOR_PORT": "eighty"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor_agent.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MONITOR_PORT" in lines[0] and "eighty" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
