"""Unreachable hosts and endpoints that answer HTML or garbage: a clear status and reason, never a
traceback, through the real `seedctl health` command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from seed.cli import cli


def write_spec(tmp_path: Path, servers: list[dict]) -> Path:
    path = tmp_path / "seed.yaml"
    data = {"name": "odd", "servers": servers, "state_dir": "state", "secrets_dir": "secrets"}
    path.write_text(yaml.safe_dump(data))
    return path


def run(spec: Path, *args: str):
    result = CliRunner().invoke(cli, ["health", "--spec", str(spec), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        ("html", "UNKNOWN", "answered text/html, not JSON: '<html><body><h1>Welcome to nginx!"),
        ("garbage-json", "UNKNOWN", "answered application/json, not JSON"),
        ("json-list", "UNKNOWN", "answered JSON list, not an object"),
        ("not-nats", "UNKNOWN", "not a nats-server's (no server_id)"),
        ("404", "UNKNOWN", "answered HTTP 404"),
    ],
)
def test_endpoint_that_is_not_nats_is_unknown_with_reason(tmp_path, odd_http_server, kind, status, words):
    port = odd_http_server(kind)
    spec = write_spec(tmp_path, [{"name": "odd-1", "client_port": 4222, "monitor_port": port}])
    result = run(spec, "--no-drift", "--format", "json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    checks = {c["check"]: c for c in report["servers"][0]["checks"]}
    assert checks["reachable"]["status"] == status
    assert words in checks["reachable"]["reason"]


def test_refused_timeout_and_dns_are_critical_with_their_cause(tmp_path, port_factory, silent_port):
    spec = write_spec(
        tmp_path,
        [
            {"name": "refused", "client_port": 4222, "cluster_port": 6222, "monitor_port": port_factory()},
            {"name": "silent", "client_port": 4223, "cluster_port": 6223, "monitor_port": silent_port},
            {
                "name": "nodns",
                "client_port": 4224,
                "cluster_port": 6224,
                "monitor_host": "seed.does-not-exist.invalid",
                "monitor_port": 8222,
            },
        ],
    )
    result = run(spec, "--no-drift", "--timeout", "0.5", "--stateless", "--via", "http")
    assert result.exit_code == 2, result.output
    first, *rest = result.output.splitlines()
    assert first.startswith("SEEDS CRITICAL - ")
    table = "\n".join(rest)
    assert re.search(r"refused +CRITICAL +reachable +unreachable: connection refused \(http://127", table)
    assert re.search(r"silent +CRITICAL +reachable +unreachable: timed out after 0.5s", table)
    assert re.search(
        r"nodns +CRITICAL +reachable +unreachable: DNS lookup failed for 'seed.does-not-exist.invalid'", table
    )


def test_bad_spec_and_unknown_server_are_one_unknown_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  - name: a\n    client_port: lots\n")
    result = run(bad)
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [
        f"SEEDS UNKNOWN - {bad}:3: servers[0].client_port: expected an integer, got a string"
    ]
    spec = write_spec(tmp_path, [{"name": "a", "client_port": 4222, "monitor_port": 8222}])
    result = run(spec, "--server", "b")
    assert result.exit_code == 3
    assert "no server named 'b'" in result.output and "(servers: a)" in result.output


def test_real_cli_process_exit_code_for_an_unreachable_seed(tmp_path, port_factory):
    spec = write_spec(tmp_path, [{"name": "gone", "client_port": 4222, "monitor_port": port_factory()}])
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "seedctl"), "health", "--spec", str(spec), "--no-drift"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout.startswith("SEEDS CRITICAL - gone reachable: unreachable: connection refused")
    assert "Traceback" not in proc.stderr
