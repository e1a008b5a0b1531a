"""Pages and JSON API render real data from running seeds; bad input is a clear 4xx, never a 500."""

from __future__ import annotations

import asyncio
import subprocess
import time

import nats
import pytest

from seed.health.runner import run_sync
from tests.plugins.tools import require_tool


def test_overview_and_server_pages_show_the_real_seed(seed, console):
    c = console.login()
    overview = c.get("/").text
    assert 'data-seed="seed-1"' in overview and 'data-status="OK"' in overview
    version = console.sampler.report("seed-1").sample.varz["version"]
    assert version in overview  # straight from the seed's /varz
    assert "All 13 checks OK" in overview
    partial = c.get("/?partial=1").text
    assert "<html" not in partial and 'data-seed="seed-1"' in partial  # what console.js swaps in

    async def with_client():
        nc = await nats.connect(seed.url_for("monitor"), name="probe-conn")
        try:
            console.wait_rounds(2)  # two samples: the sparklines have a line
            return await asyncio.to_thread(c.get, "/server/seed-1")
        finally:
            await nc.close()

    page = run_sync(with_client).text
    for check in ("reachable", "topology", "config_drift", "tls_cert", "federation_traffic"):
        assert f"<td>{check}</td>" in page
    assert page.count('<svg class="spark"') == 5  # connections, msgs in, msgs out, memory, CPU
    assert "probe-conn" in page  # the live paged /connz table
    assert "127.0.0.1" not in page.split("Top connections")[1]  # no client addresses shown
    assert "Subscriptions" in page
    assert c.get("/server/seed-1?window=24h&page=0").status_code == 200
    r = c.get("/server/seed-1?window=bogus")
    assert r.status_code == 400 and "window=&#39;bogus&#39; is not one of 1h" in r.text  # named, no 500
    r = c.get("/server/seed-1?page=-3")
    assert r.status_code == 400 and "page=&#39;-3&#39; must be a whole number from 0 to 9999" in r.text


def test_unknown_seed_and_bad_parameters_are_4xx_with_reasons(console):
    c = console.login()
    r = c.get("/server/nope")
    assert r.status_code == 404 and "no seed named &#39;nope&#39;" in r.text
    r = c.get("/api/seeds/nope/health")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no seed named 'nope' (seeds: seed-1)"
    r = c.get("/api/seeds/seed-1/history?metric=password")
    assert r.status_code == 400 and "metric='password' is not one of" in r.json()["error"]["message"]
    r = c.get("/api/seeds/seed-1/history?metric=connections&since=yesterday-ish")
    assert r.status_code == 400 and "since='yesterday-ish'" in r.json()["error"]["message"]
    assert c.get("/api/nope").json()["error"]["code"] == "not_found"
    for since in ("nan", "inf", "-Infinity", "1e400"):  # not finite: the answer would not be valid JSON
        r = c.get("/api/seeds/seed-1/history", params={"since": since})
        assert r.status_code == 400 and f"since={since!r}" in r.json()["error"]["message"]


def test_api_seeds_health_and_history(console):
    c = console.login()
    console.wait_rounds(2)
    seeds = c.get("/api/seeds").json()
    assert [s["name"] for s in seeds["seeds"]] == ["seed-1"]
    s = seeds["seeds"][0]
    assert s["status"] == "OK" and s["figures"]["up"] is True and s["figures"]["max_connections"] == 10000
    health = c.get("/api/seeds/seed-1/health").json()
    assert health["status"] == "OK" and len(health["checks"]) == 13
    hist = c.get("/api/seeds/seed-1/history", params={"metric": "connections", "since": "15m"}).json()
    assert hist["metric"] == "connections" and len(hist["points"]) >= 1
    assert {v for _, v in hist["points"]} == {0}  # nobody connected to this seed
    assert all(t >= hist["since"] for t, _ in hist["points"])
    later = c.get(
        "/api/seeds/seed-1/history", params={"metric": "mem_bytes", "since": str(time.time() + 60)}
    ).json()
    assert later["points"] == []


@pytest.mark.slow
def test_alerts_page_keeps_first_seen_and_resolves(seed, console):
    c = console.login()
    seed.stop()
    console.wait_rounds(2)
    alerts = console.app.extensions["history"].open_alerts()
    assert [(a["server"], a["check_name"], a["status"]) for a in alerts] == [
        ("seed-1", "reachable", "CRITICAL")
    ]
    first_seen = alerts[0]["first_seen"]
    console.wait_rounds(1)
    assert console.app.extensions["history"].open_alerts()[0]["first_seen"] == first_seen  # not reset
    page = c.get("/alerts").text
    assert "connection refused" in page and "Failing now" in page
    seed.start()
    console.wait_rounds(2)
    history = console.app.extensions["history"]
    assert [a for a in history.open_alerts() if a["check_name"] == "reachable"] == []
    resolved = history.recent_alerts(0)
    assert resolved[0]["check_name"] == "reachable" and resolved[0]["resolved_at"] >= first_seen
    assert "Resolved in the last 7 days" in c.get("/alerts").text


def test_history_survives_a_console_restart(seed, console_factory, tmp_path):
    db = tmp_path / "console.db"
    first = console_factory(seed, db_path=db)
    first.wait_rounds(3)
    first.sampler.stop()
    second = console_factory(seed, db_path=db, interval=3600)  # will not sample again during the test
    second.sampler.stop()
    c = second.login()
    hist = c.get("/api/seeds/seed-1/history", params={"metric": "connections", "since": "1h"}).json()
    assert len(hist["points"]) >= 1  # charts come from SQLite, not memory


def test_metrics_are_valid_prometheus_text(console):
    promtool = require_tool("promtool")
    r = console.client().get("/metrics", headers={"Authorization": f"Bearer {console.metrics_token}"})
    body = r.text
    for name in (
        "nats_seed_up", "nats_seed_health_status", "nats_seed_connections", "nats_seed_in_msgs_total",
        "nats_seed_out_msgs_total", "nats_seed_slow_consumers_total", "nats_seed_routes_expected",
        "nats_seed_routes_live", "seed_console_poll_seconds_bucket",
    ):  # fmt: skip
        assert f"\n{name}" in body or body.startswith(name) or f"# TYPE {name}" in body, name
    assert 'nats_seed_health_status{seed="seed-1"} 0.0' in body
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cluster_page_of_a_spec_without_a_cluster_names_none(seed, console):
    page = console.login().get("/cluster").text
    assert "tbfed-seeds" not in page and "defines no cluster" in page
