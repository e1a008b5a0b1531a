"""`seedctl health` on the history stream (spec `history:`, issue 16): present with a leader,
replicas current, storage vs history.max_bytes; the same verdicts over HTTP (/jsz) and over the
system account ($SYS.REQ.SERVER.PING.JSZ); Prometheus gauges for the alert rules.

Real nats-server with JetStream, started and given its stream by seedctl's own code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from click.testing import CliRunner

from monitor_agent.protocol import history_stream
from seed import history, lifecycle, render, secrets
from seed.cli import cli
from seed.health import DigestOracle, Status, run_health
from seed.health.checks import HISTORY_CHECK_NAMES
from seed.health.exposition import render_text
from tests.plugins.tools import wait_for

SEEDCTL = str(Path(sys.executable).parent / "seedctl")


def _verdicts(reports) -> list[tuple[str, str, str]]:
    return [(rep.name, r.name, r.status.name) for rep in reports for r in rep.results]


def _both(spec, oracle=None, **kw):
    oracle = oracle or DigestOracle()
    return run_health(spec, oracle=oracle, via="http", **kw), run_health(
        spec, oracle=oracle, via="nats", **kw
    )


async def _fill(url: str, share: float, max_bytes: int) -> int:
    """Publish task events until the stream holds `share` of max_bytes; returns its bytes."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        payload = b'{"v":1,"event":"task_completed",' + b"x" * 900 + b"}"
        while True:
            info = await js.stream_info(history_stream())
            if info.state.bytes >= share * max_bytes:
                return info.state.bytes
            missing = int((share * max_bytes - info.state.bytes) / 1000) + 1
            for _ in range(min(missing, 200)):
                await nc.publish("tbfed.v1.task.node-aaaaaaaaaa", payload)
            await nc.flush()
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


def test_history_checks_over_http_and_nats_and_storage_thresholds(seed_factory):
    s = seed_factory(history={"max_age": "1h", "max_bytes": "1MiB"})
    history.ensure_stream(s.spec, timeout=20)
    oracle = DigestOracle()
    via_http, via_nats = _both(s.spec, oracle)
    assert _verdicts(via_nats) == _verdicts(via_http)
    assert [r.name for r in via_http[0].results][-3:] == list(HISTORY_CHECK_NAMES)
    assert {v for _, _, v in _verdicts(via_http)} == {"OK"}, via_http[0].failing
    [rep] = via_nats
    assert rep.check("history_stream").reason == "TBFED_V1_TASKS: 0 events, leader this server"
    assert rep.check("history_replicas").reason.startswith("1 replica")
    assert rep.figures["history_max_bytes"] == 1 << 20 and rep.figures["history_leader"] is True

    used = asyncio.run(_fill(s.url_for("monitor"), 0.85, 1 << 20))
    via_http, via_nats = _both(s.spec, oracle)
    assert _verdicts(via_nats) == _verdicts(via_http)
    for r in (via_http[0], via_nats[0]):
        storage = r.check("history_storage")
        assert storage.status is Status.WARNING and storage.value >= used, storage
        assert "of max_bytes 1.0 MiB" in storage.reason and "raise history.max_bytes" in storage.reason
    # The command a cron job or textfile collector runs: WARNING exit 1, the gauges for the rules.
    prom = subprocess.run(
        [SEEDCTL, "health", "--spec", str(s.spec_path), "--format", "prometheus", "--via", "nats"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert prom.returncode == 1, prom.stdout + prom.stderr
    assert 'nats_seed_check_status{check="history_storage",seed="seed-1"} 1.0' in prom.stdout
    assert 'nats_seed_history_max_bytes{seed="seed-1"} 1.048576e+06' in prom.stdout
    assert 'nats_seed_history_leader{seed="seed-1"} 1.0' in prom.stdout
    assert "nats_seed_history_bytes{" in prom.stdout and "nats_seed_history_replica_current{" in prom.stdout

    asyncio.run(_fill(s.url_for("monitor"), 0.96, 1 << 20))
    via_http, via_nats = _both(s.spec, oracle)
    assert _verdicts(via_nats) == _verdicts(via_http)
    assert via_nats[0].check("history_storage").status is Status.CRITICAL
    text = CliRunner().invoke(
        cli, ["health", "--spec", str(s.spec_path), "-q", "--history-crit", "99", "--history-warn", "98"]
    )
    assert text.exit_code == 0, text.output  # thresholds from the command line
    assert "seed-1_history=" in text.output.splitlines()[0]  # Nagios perfdata


def _drift(reports) -> list[tuple[str, str]]:
    return [(r.check("config_drift").status.name, r.check("config_drift").reason) for r in reports]


def test_ansible_deployed_history_seed_has_no_drift_until_the_spec_changes(seed_factory, tmp_path):
    """The Ansible role renders the spec's config with the host's own JetStream store directory
    (nats_seed_jetstream_dir, default <nats_seed_state_dir>/jetstream), not the controller's
    state_dir: that alone is no drift; a changed spec setting still is."""
    s = seed_factory(start=False, history={"max_age": "1h", "max_bytes": "1MiB"})
    server = s.spec.servers[0]
    host_state = tmp_path / "host" / "var" / "lib" / "nats-seed"
    conf = tmp_path / "host" / "etc" / "nats-seed" / "nats-server.conf"
    conf.parent.mkdir(parents=True)
    host_state.mkdir(parents=True)
    text = render.render_server(s.spec, server, store_dir=str(host_state / "jetstream"))
    assert text != render.render_server(s.spec, server)  # what `seedctl render` gives on the controller
    secrets.write_private(conf, text)
    with (tmp_path / "nats-server.log").open("wb") as log:
        proc = subprocess.Popen([s.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: lifecycle.healthz(server), timeout=20, what="the Ansible-style seed's /healthz")
        history.ensure_stream(s.spec, timeout=20)
        oracle = DigestOracle()
        via_http, via_nats = _both(s.spec, oracle)
        assert _drift(via_http) == _drift(via_nats) == [("OK", "running config matches the spec")]
        assert {v for _, _, v in _verdicts(via_http)} == {"OK"}, via_http[0].failing
        out = CliRunner().invoke(cli, ["health", "--spec", str(s.spec_path), "--stateless", "--via", "nats"])
        assert out.exit_code == 0, out.output

        # A real drift: the spec's limit changed, the running config still has the old one.
        s.rewrite(limits={**s.data["limits"], "max_payload": 512 * 1024})
        via_http, via_nats = _both(s.spec, oracle)
        for status, reason in _drift(via_http) + _drift(via_nats):
            assert status == "WARNING" and "run `seedctl reload`" in reason, reason
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_without_history_no_new_checks_and_no_history_metrics(seed):
    [rep] = run_health(seed.spec, via="http")
    assert not {r.name for r in rep.results} & set(HISTORY_CHECK_NAMES)
    assert not any(k.startswith("history_") for k in rep.figures)
    assert "history" not in render_text([rep])


def _leader(reports) -> str:
    return next(r.name for r in reports if r.figures.get("history_leader"))


@pytest.mark.slow
def test_cluster_replicas_current_then_a_killed_seed_is_named_then_no_leader(seed_factory):
    s = seed_factory(servers=3, history={"max_age": "1h", "max_bytes": "8MiB"})
    assert history.ensure_stream(s.spec, timeout=60).replicas == 3

    oracle = DigestOracle()

    def all_ok():
        reps = run_health(s.spec, via="http", oracle=oracle)
        return all(r.status is Status.OK for r in reps) and reps

    reps = wait_for(all_ok, timeout=30, interval=0.3, what="mesh and three current replicas")
    via_nats = run_health(s.spec, via="nats", oracle=oracle)
    assert _verdicts(via_nats) == _verdicts(reps)
    leader = _leader(reps)
    assert (
        reps[s.names.index(leader)].check("history_replicas").reason == "3/3 replicas current (leader here)"
    )
    follower = next(n for n in s.names if n != leader)
    assert "this replica is current" in reps[s.names.index(follower)].check("history_replicas").reason

    os.kill(s.pid(follower), signal.SIGKILL)

    def named(via):
        reps = run_health(s.spec, via=via, timeout=1.0)
        res = reps[s.names.index(leader)].check("history_replicas")
        return res.status is Status.WARNING and follower in res.reason and reps

    via_http = wait_for(
        lambda: named("http"), timeout=30, interval=0.5, what="the leader naming the dead replica"
    )
    via_nats = wait_for(lambda: named("nats"), timeout=10, interval=0.5, what="the same over $SYS")
    res = via_nats[s.names.index(leader)].check("history_replicas")
    assert res.reason.startswith("2/3 replicas current") and f"{follower} " in res.reason
    assert _verdicts(via_nats) == _verdicts(via_http)
    assert via_http[s.names.index(leader)].check("history_stream").status is Status.OK  # quorum kept

    # A second seed gone: no quorum, no leader: CRITICAL on the survivor, both ways.
    last = next(n for n in s.names if n not in (leader, follower))
    os.kill(s.pid(leader), signal.SIGKILL)

    def no_leader(via):
        reps = run_health(s.spec, via=via, timeout=1.0)
        res = reps[s.names.index(last)].check("history_stream")
        return res.status is Status.CRITICAL and reps

    via_http = wait_for(lambda: no_leader("http"), timeout=40, interval=0.5, what="no leader on the survivor")
    via_nats = wait_for(lambda: no_leader("nats"), timeout=10, interval=0.5, what="the same over $SYS")
    assert "no leader elected" in via_nats[s.names.index(last)].check("history_stream").reason
    assert _verdicts(via_nats) == _verdicts(via_http)
