"""`seedctl health` against real nats-server seeds started through seedctl's own lifecycle."""

from __future__ import annotations

import asyncio
import datetime
import json

import nats
import pytest
import trustme
from click.testing import CliRunner

from seed.cli import cli
from seed.health.runner import run_sync
from tests.plugins.tools import wait_for as _wait_for


def health(handle, *args: str) -> tuple[int, dict]:
    """Run the real command (in-process); returns (exit code, JSON report)."""
    result = CliRunner().invoke(cli, ["health", "--spec", str(handle.spec_path), "--format", "json", *args])
    assert isinstance(result.exception, SystemExit | None), result.output
    return result.exit_code, json.loads(result.output)


def checks(report: dict, server: str) -> dict[str, dict]:
    srv = next(s for s in report["servers"] if s["name"] == server)
    return {c["check"]: c for c in srv["checks"]}


def _topology_is(report: dict, server: str, status: str) -> dict | None:
    return report if checks(report, server)["topology"]["status"] == status else None


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    return _wait_for(predicate, timeout=timeout, interval=0.1, what=what)


def test_healthy_single_seed_is_all_ok_exit_0(seed):
    code, report = health(seed)
    assert code == 0, report["summary"]
    assert report["status"] == "OK"
    got = checks(report, "seed-1")
    assert {c["status"] for c in got.values()} == {"OK"}
    assert got["config_drift"]["reason"] == "running config matches the spec"
    assert got["topology"]["reason"] == "standalone (no cluster in the spec)"
    assert report["servers"][0]["figures"]["version"]  # real data from /varz


@pytest.mark.slow
def test_cluster_stop_one_node_names_it_then_recovers(seed_factory):
    handle = seed_factory(servers=3)
    # routes form a moment after /healthz is ok: wait for the mesh like an operator would
    wait_for(lambda: health(handle, "--stateless")[0] == 0, what="3-node mesh")
    code, report = health(handle)
    assert code == 0, report["summary"]

    handle.stop("seed-2")
    # the survivors notice the lost route within a moment
    report = wait_for(lambda: _topology_is(health(handle)[1], "seed-1", "CRITICAL"), what="route loss")
    code, report = health(handle)
    assert code == 2
    assert checks(report, "seed-2")["reachable"]["status"] == "CRITICAL"
    assert "connection refused" in checks(report, "seed-2")["reachable"]["reason"]
    for other in ("seed-1", "seed-3"):
        topo = checks(report, other)["topology"]
        assert topo["status"] == "CRITICAL"
        assert topo["reason"] == "missing routes to seed-2 (1/2 peers routed)"

    handle.start("seed-2")
    wait_for(lambda: all(_topology_is(health(handle)[1], n, "OK") for n in handle.names), what="routes back")
    code, report = health(handle)
    # Back to OK: seedctl itself started seed-2, so the restart is a note, not a warning
    # (tests/health/test_deliberate_restart.py: a restart seedctl did not make still warns).
    assert code == 0, report["summary"]
    assert "started by seedctl" in checks(report, "seed-2")["restart"]["reason"]


def test_drift_when_spec_changes_without_reload_then_reload_clears_it(seed):
    assert health(seed)[0] == 0
    seed.rewrite(limits={**seed.data["limits"], "max_connections": 777})
    code, report = health(seed)
    assert code == 1, report["summary"]
    drift = checks(report, "seed-1")["config_drift"]
    assert drift["status"] == "WARNING" and "seedctl reload" in drift["reason"]
    seed.reload()  # what `seedctl reload` does: render, validate, SIGHUP, verify the digest
    code, report = health(seed)
    assert code == 0, report["summary"]
    assert checks(report, "seed-1")["connections"]["reason"].startswith("0/777 connections")


def test_connection_saturation_warns_at_80_and_is_critical_at_95_percent(seed_factory):
    handle = seed_factory(max_connections=10)
    url = handle.url_for("monitor")

    async def scenario():
        conns = [await nats.connect(url, name=f"t{i}", allow_reconnect=False) for i in range(9)]
        try:
            code, report = await asyncio.to_thread(health, handle)
            first = (code, checks(report, "seed-1")["connections"])
            # The federation account stops at 9 of 10 (one kept for the admin): the admin takes the last.
            conns.append(await nats.connect(handle.url_for("admin"), name="t9", allow_reconnect=False))
            code, report = await asyncio.to_thread(health, handle)
            return first, (code, checks(report, "seed-1")["connections"])
        finally:
            for nc in conns:
                await nc.close()

    (code9, conn9), (code10, conn10) = run_sync(scenario)
    assert (code9, conn9["status"], conn9["value"]) == (1, "WARNING", 9)
    assert conn9["reason"] == "9/10 connections (90%) >= 80%"
    assert (code10, conn10["status"], conn10["value"]) == (2, "CRITICAL", 10)


def test_text_output_is_nagios_shaped(seed):
    result = CliRunner().invoke(cli, ["health", "--spec", str(seed.spec_path), "--quiet"])
    assert result.exit_code == 0
    first, blank, header, row = result.output.splitlines()
    summary, perf = first.split(" | ")
    assert summary == "SEEDS OK - 1 server healthy"
    assert "seed-1_connections=0;;;0;10000" in perf.split() and "seed-1_routes=0;;;0;0" in perf.split()
    assert header.split() == ["SERVER", "STATUS", "CHECK", "REASON"]
    assert row.split() == ["seed-1", "OK", "(all)", "13", "checks", "OK"]


def test_tls_certificate_expiring_in_ten_days_warns(seed_factory, tmp_path):
    ca = trustme.CA()
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    cert = ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    handle = seed_factory(tls={"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"})
    code, report = health(handle)
    tls = checks(report, "seed-1")["tls_cert"]
    assert code == 1, report["summary"]
    assert tls["status"] == "WARNING"
    assert tls["reason"] == f"certificate expires {not_after:%Y-%m-%d} (in 10 days) < 21 days"
