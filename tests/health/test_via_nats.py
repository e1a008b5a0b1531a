"""Health over the system account ($SYS.REQ.SERVER.PING.*) gives the same verdicts as over HTTP.

One real 3-server cluster per test; both ways sample it in the same run and are compared check
by check. A seed missing from the PING replies fails `reachable` (and its peers' `topology`)
by name. The console, in its own process with --via nats, shows all three seeds green.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from seed.health import DigestOracle, Status, run_health
from seed.health.sysreq import choose_via
from seed.supervisor import Child
from tests.plugins.tools import http_get, wait_for

pytestmark = pytest.mark.slow


def _meshed(handle) -> bool:
    for name, url in zip(handle.names, handle.monitor_urls, strict=True):
        routes = http_get(f"{url}/routez", timeout=3).json().get("routes") or []
        if {r.get("remote_name") for r in routes} < set(handle.names) - {name}:
            return False
    return True


@pytest.fixture
def cluster(seed_factory):
    handle = seed_factory(servers=3)
    wait_for(lambda: _meshed(handle), what="a full route mesh")
    return handle


def _verdicts(reports) -> list[tuple[str, str, str]]:
    return [(rep.name, r.name, r.status.name) for rep in reports for r in rep.results]


def test_the_13_checks_give_the_same_verdicts_via_nats_and_via_http(cluster):
    oracle = DigestOracle()
    assert choose_via(cluster.spec, None, "auto") == "http"  # loopback on this host
    via_http = run_health(cluster.spec, oracle=oracle, via="http")
    via_nats = run_health(cluster.spec, oracle=oracle, via="nats")
    assert len(_verdicts(via_nats)) == 3 * 13
    assert _verdicts(via_nats) == _verdicts(via_http)
    assert {v for _, _, v in _verdicts(via_nats)} == {"OK"}, _verdicts(via_nats)
    for rep in via_nats:
        assert rep.check("reachable").reason.startswith("$SYS request answered")
        assert rep.check("config_drift").reason == "running config matches the spec"
        assert rep.figures["routes_live"] == 2 and rep.figures["server_id"]
    # The same figures the checks judge (connections differ by the admin's own connection).
    for h, n in zip(via_http, via_nats, strict=True):
        assert n.figures["version"] == h.figures["version"]
        assert n.figures["config_digest"] == h.figures["config_digest"]


def test_a_seed_missing_from_the_ping_replies_fails_reachable_and_topology_by_name(cluster):
    oracle = DigestOracle()
    cluster.stop("seed-3")
    via_nats = run_health(cluster.spec, oracle=oracle, via="nats", timeout=1.0)
    via_http = run_health(cluster.spec, oracle=oracle, via="http", timeout=1.0)
    by = {r.name: r for r in via_nats}
    assert by["seed-3"].check("reachable").status is Status.CRITICAL
    assert "seed-3 did not answer $SYS.REQ.SERVER.PING" in by["seed-3"].check("reachable").reason
    for peer in ("seed-1", "seed-2"):
        topo = by[peer].check("topology")
        assert topo.status is Status.CRITICAL and "missing routes to seed-3" in topo.reason
    assert _verdicts(via_nats) == _verdicts(via_http)


def test_no_seed_accepting_the_admin_makes_every_seed_unreachable_with_the_reason(cluster):
    (cluster.secrets_dir / "admin.password").write_text("not-the-password-that-was-rendered\n")
    reports = run_health(cluster.spec, via="nats", timeout=1.0)
    for rep in reports:
        reach = rep.check("reachable")
        assert reach.status is Status.CRITICAL
        assert "cannot connect to any seed as admin" in reach.reason and "uthorization" in reach.reason


def test_console_in_another_process_via_nats_shows_all_three_seeds_green(cluster, port_factory, tmp_path):
    assert all(s.monitor_host == "127.0.0.1" for s in cluster.spec.servers)
    port = port_factory()
    cmd = [str(Path(sys.executable).parent / "seedctl"), "console", "--spec", str(cluster.spec_path),
           "--port", str(port), "--interval", "1", "--db", str(tmp_path / "c.db"), "--via", "nats"]  # fmt: skip
    proc = Child("seedctl console", cmd, tmp_path / "console.log").start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5) as c:
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
            password = (cluster.secrets_dir / "console.password").read_text().strip()
            assert c.post("/login", data={"csrf_token": token, "password": password}).status_code == 302

            def green():
                seeds = c.get("/api/seeds").json()["seeds"]
                return len(seeds) == 3 and all(s["status"] == "OK" for s in seeds) and seeds

            wait_for(green, timeout=30, interval=0.2, what="three green seeds in the console")
            for name in cluster.names:
                checks = c.get(f"/api/seeds/{name}/health").json()["checks"]
                reach = next(x for x in checks if x["check"] == "reachable")
                assert reach["reason"].startswith("$SYS request answered"), reach
    finally:
        proc.stop(15)
    err = proc.output()
    assert "via nats" in err and "Traceback" not in err


def test_health_via_nats_over_the_client_tls_trusting_the_seed_certificate(seed_factory, tmp_path):
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "seed.pem", tmp_path / "seed-key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(chain), append=i > 0)
    handle = seed_factory(tls={"cert": chain, "key": key, "ca": None})
    [rep] = run_health(handle.spec, via="nats", oracle=DigestOracle())
    assert rep.status is Status.OK, rep.failing
    assert rep.check("tls_cert").reason.startswith("certificate expires")
