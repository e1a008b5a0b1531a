"""The nats_seed role, converged for real by `seedctl deploy` (ansible-runner, local connection).

One cluster is converged once per module and the tests below build on it in order (Ansible is
slow: converging three hosts costs ~20 s): converge, byte-identical config, idempotence, reload
on a user change, a refused config, --check, a restart-requiring change, rolling restart, and
last a route password rotation.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import threading
import time

import httpx
import nats
import pytest
from click.testing import CliRunner

from seed import natsbin, render, secrets
from seed.cli import cli
from seed.render import render_server
from tests.plugins.tools import free_port, http_get

from .cluster import make_cluster, wait_until

pytestmark = [pytest.mark.ansible, pytest.mark.slow, pytest.mark.timeout(240)]

SUBJECT = "tbfed.v1.task.node-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, nats_server_bin):
    c = make_cluster(tmp_path_factory.mktemp("ansible-seed"), nats_server_bin)
    try:
        c.first = c.deploy()
        c.first_output = c.output()
        yield c
    finally:
        c.stop_all()


async def _cross(url_pub: str, url_sub: str) -> bytes:
    sub_nc = await nats.connect(url_sub, connect_timeout=5)
    pub_nc = await nats.connect(url_pub, connect_timeout=5)
    try:
        sub = await sub_nc.subscribe(SUBJECT)
        await sub_nc.flush()
        deadline = time.monotonic() + 10
        while True:  # interest crosses the routes asynchronously: publish until it arrives
            await pub_nc.publish(SUBJECT, b'{"v":1}')
            await pub_nc.flush()
            try:
                return (await sub.next_msg(timeout=0.5)).data
            except nats.errors.TimeoutError:
                if time.monotonic() > deadline:
                    raise
    finally:
        await pub_nc.close()
        await sub_nc.close()


def test_converge_three_hosts_healthy_meshed_and_a_message_crosses(cluster):
    assert cluster.first.ok, cluster.first_output
    for name in cluster.names:
        assert cluster.healthy(name), f"{name} not healthy"
        assert cluster.varz(name)["server_name"] == name
        routes = http_get(cluster.monitor_url(name) + "/routez", timeout=5).json()["routes"]
        assert {r["remote_name"] for r in routes} == set(cluster.names) - {name}
    # the progress stream: a line per task and host, then the summary table
    assert re.search(r"changed\s+seed-2\s+nats_seed : Render the config", cluster.first_output)
    assert re.search(r"^host\s+ok\s+changed\s+failed", cluster.first_output, re.M)
    data = asyncio.run(_cross(cluster.url_for("monitor", "seed-1"), cluster.url_for("monitor", "seed-3")))
    assert data == b'{"v":1}'


def test_deployed_config_is_byte_identical_to_seedctl_render(cluster):
    for server in cluster.spec.servers:
        deployed = cluster.config_file(server.name).read_bytes()
        assert deployed == render_server(cluster.spec, server).encode()
        assert cluster.config_file(server.name).stat().st_mode & 0o777 == 0o600


def test_second_run_changes_nothing(cluster):
    pids = {n: cluster.process_start(n) for n in cluster.names}
    result = cluster.deploy()
    assert result.ok, cluster.output()
    assert result.changed == 0, result.changed_tasks
    assert result.changed_tasks == []
    assert {n: cluster.process_start(n) for n in cluster.names} == pids


def test_user_change_reloads_and_only_a_listener_change_restarts(cluster):
    """Add a user everywhere (reloadable) and move seed-1's monitoring port (not reloadable)."""
    before = {n: cluster.process_start(n) for n in cluster.names}
    servers = [dict(s) for s in cluster.data["servers"]]
    servers[0]["monitor_port"] = free_port()
    cluster.rewrite(
        users=cluster.data["users"] + [{"name": "observer2", "role": "observer"}], servers=servers
    )
    result = cluster.deploy()
    assert result.ok, cluster.output()
    reloaded = {h for h, task in result.changed_tasks if task.endswith("Reload nats-server (SIGHUP)")}
    started = {
        h for h, task in result.changed_tasks if task.endswith("Start nats-server as a detached process")
    }
    assert reloaded == {"seed-2", "seed-3"}
    assert started == {"seed-1"}
    assert "restart required: monitoring listen" in cluster.output()
    assert cluster.process_start("seed-1") != before["seed-1"]
    for name in ("seed-2", "seed-3"):
        assert cluster.process_start(name) == before[name], f"{name} was restarted, not reloaded"
    for name in cluster.names:
        assert cluster.varz(name)["config_digest"] == natsbin.validate(cluster.config_file(name))
        assert cluster.healthy(name)
    # and the new user really is live
    asyncio.run(_cross(cluster.url_for("monitor", "seed-2"), cluster.url_for("observer2", "seed-2")))


def test_invalid_config_fails_at_validate_and_leaves_server_untouched(cluster, tmp_path):
    garbage = tmp_path / "not-a-cert.pem"
    garbage.write_text("this is not PEM\n")
    before = {n: (cluster.config_file(n).read_bytes(), cluster.process_start(n)) for n in cluster.names}
    digests = {n: cluster.varz(n)["config_digest"] for n in cluster.names}
    cluster.rewrite(tls={"cert": str(garbage), "key": str(garbage)})
    try:
        result = cluster.deploy()
    finally:
        cluster.rewrite(tls=None)
    assert result.rc != 0
    assert sorted(f.host for f in result.failures) == cluster.names
    for f in result.failures:
        assert f.task == "nats_seed : Render the config and validate it with nats-server -t"
        assert "failed to find any PEM data" in f.message  # nats-server's own words
    out = cluster.output()
    assert "FAILED (3):" in out and "host seed-1, task 'nats_seed : Render the config" in out
    for name in cluster.names:
        assert (cluster.config_file(name).read_bytes(), cluster.process_start(name)) == before[name]
        assert cluster.varz(name)["config_digest"] == digests[name]
        assert cluster.healthy(name)


def test_check_mode_shows_the_diff_and_changes_nothing(cluster):
    before = {n: cluster.config_file(n).read_bytes() for n in cluster.names}
    cluster.rewrite(limits={**cluster.data["limits"], "max_connections": 1234})
    try:
        res = CliRunner().invoke(
            cli,
            [
                "deploy",
                "--spec",
                str(cluster.spec_path),
                "-i",
                str(cluster.inventory),
                "--check",
                "--limit",
                "seed-1",
            ],
        )
    finally:
        cluster.rewrite(limits={k: v for k, v in cluster.data["limits"].items() if k != "max_connections"})
    assert res.exit_code == 0, res.output
    assert "-max_connections: 10000" in res.output and "+max_connections: 1234" in res.output
    assert "check mode" in res.output
    assert re.search(r"^seed-1\s+\d", res.output, re.M)
    assert not re.search(r"^seed-2\s+\d", res.output, re.M)  # --limit: only seed-1 ran
    assert {n: cluster.config_file(n).read_bytes() for n in cluster.names} == before


RECONNECT_WAIT = 1.0


def test_rolling_restart_keeps_two_nodes_serving_and_clients_connected(cluster):
    before = {n: cluster.process_start(n) for n in cluster.names}
    stop = threading.Event()
    healthy_counts: list[int] = []
    gaps: list[float] = []
    published = [0]
    errors: list[BaseException] = []

    def probe() -> None:
        while not stop.is_set():
            healthy_counts.append(sum(cluster.healthy(n, timeout=0.5) for n in cluster.names))
            time.sleep(0.1)

    async def client() -> None:
        down_since: list[float] = []

        async def disconnected():
            down_since.append(time.monotonic())

        async def reconnected():
            gaps.append(time.monotonic() - down_since[-1])

        nc = await nats.connect(
            [cluster.url_for("monitor", n) for n in cluster.names],
            reconnect_time_wait=RECONNECT_WAIT,
            max_reconnect_attempts=-1,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )
        try:
            while not stop.is_set():
                await nc.publish(SUBJECT, b'{"v":1}')
                published[0] += 1
                await asyncio.sleep(0.05)
        finally:
            await nc.close()

    def run_client() -> None:
        try:
            asyncio.run(client())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=probe, daemon=True), threading.Thread(target=run_client, daemon=True)]
    for t in threads:
        t.start()
    assert wait_until(lambda: published[0] > 5, 10)
    try:
        result = cluster.deploy("rolling-restart")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert result.ok, cluster.output()
    assert not errors, errors
    for name in cluster.names:  # every server was restarted...
        assert cluster.process_start(name) != before[name]
        assert cluster.healthy(name)
    # ...one at a time: never fewer than two serving
    assert healthy_counts and min(healthy_counts) >= 2, healthy_counts
    # the client was moved off at least once and was never away longer than its reconnect wait
    assert gaps, "the publishing client was never moved (it should be when its server restarts)"
    assert max(gaps) <= RECONNECT_WAIT, gaps
    order = [line.split()[1] for line in cluster.lines if "Start nats-server as a detached process" in line]
    assert order == cluster.names  # serial: 1, in inventory order


def _routes(cluster) -> dict[str, set[str]]:
    out = {}
    for name in cluster.names:
        try:
            routez = http_get(cluster.monitor_url(name) + "/routez", timeout=1).json()
            out[name] = {r.get("remote_name") for r in routez.get("routes") or ()}
        except (httpx.HTTPError, ValueError):
            out[name] = set()
    return out


# Last: it changes the cluster's route password (it reuses this module's converged cluster instead
# of converging its own, ~20 s saved).
@pytest.mark.timeout(900)
def test_route_password_rotation_keeps_the_mesh_whole(cluster, nats_server_bin, tmp_path):
    """`seedctl deploy --playbook rotate-credentials --routes`: a new cluster route password
    without splitting the cluster: while it runs, every pair of seeds is sampled for a route and
    messages cross the mesh continuously; afterwards the old password is worth nothing (a server
    presenting it is refused)."""
    old = render.route_password(cluster.spec, create=False)
    pairs = list(itertools.combinations(cluster.names, 2))
    stop = threading.Event()
    unrouted: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}  # when a pair had no route
    counts = {"sent": 0, "received": {n: 0 for n in cluster.names}}
    errors: list[BaseException] = []

    def probe():
        while not stop.is_set():
            seen = _routes(cluster)
            now = time.monotonic()
            for a, b in pairs:
                if b not in seen[a] and a not in seen[b]:
                    unrouted[(a, b)].append(now)
            time.sleep(0.05)

    async def traffic():
        subs = []
        for name in cluster.names:
            nc = await nats.connect(cluster.url_for("observer", name), max_reconnect_attempts=-1)

            async def cb(_msg, name=name):
                counts["received"][name] += 1

            await nc.subscribe(SUBJECT, cb=cb)
            subs.append(nc)
        pub = await nats.connect(cluster.url_for("monitor", cluster.names[0]), max_reconnect_attempts=-1)
        await asyncio.sleep(0.5)  # interest crosses the routes
        while not stop.is_set():
            await pub.publish(SUBJECT, b'{"v":1}')
            counts["sent"] += 1
            await asyncio.sleep(0.01)
        await pub.flush()
        await asyncio.sleep(1.0)
        for nc in [pub, *subs]:
            await nc.close()

    def run_traffic():
        try:
            asyncio.run(traffic())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=probe, daemon=True), threading.Thread(target=run_traffic, daemon=True)]
    for t in threads:
        t.start()
    assert wait_until(lambda: counts["sent"] > 20, 10)
    try:
        res = CliRunner().invoke(
            cli,
            ["deploy", "--spec", str(cluster.spec_path), "-i", str(cluster.inventory),
             "--playbook", "rotate-credentials", "--routes"],
        )  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert res.exit_code == 0, res.output
    assert "route rotation done" in res.output
    assert not errors, errors
    new = render.route_password(cluster.spec, create=False)
    assert new != old and not (cluster.spec.secrets_dir / secrets.ROUTE_SECRET_NEXT).exists()

    # The mesh stayed whole: no pair of seeds went without a route for longer than a re-dial.
    longest = {p: _longest_run(ts) for p, ts in unrouted.items()}
    assert max(longest.values()) <= 1.0, longest
    # Messages kept crossing: each receiver (one local to the publisher, two across routes)
    # got all but at most a re-dial's worth of them.
    sent = counts["sent"]
    for name, got in counts["received"].items():
        assert got >= sent * 0.97, (name, got, sent, longest)
    print(f"route rotation: sent {sent}, received {counts['received']}, longest unrouted {longest}")

    # End state: every config holds only the new password, the mesh is full, the old password is void.
    for name in cluster.names:
        text = cluster.config_file(name).read_text()
        assert old not in text and text.count(new) == 1 + (len(cluster.names) - 1)
    assert wait_until(lambda: all(len(v) == 2 for v in _routes(cluster).values()), 10)
    _assert_old_password_refused(cluster, nats_server_bin, tmp_path, old)


def _longest_run(times: list[float], step: float = 0.3) -> float:
    """Longest stretch of consecutive samples without a route (samples come every ~0.05-0.3 s)."""
    longest, start, last = 0.0, None, None
    for t in times:
        if last is None or t - last > step:
            start = t
        last = t
        longest = max(longest, last - start)
    return longest


def _assert_old_password_refused(cluster, nats_server_bin, tmp_path, old: str):
    target = cluster.spec.servers[0]
    conf = tmp_path / "stale.conf"
    conf.write_text(
        f"""server_name: "stale"
listen: "127.0.0.1:-1"
cluster {{ name: "{cluster.spec.cluster_name}", listen: "127.0.0.1:-1",
  routes: ["nats-route://route:{old}@127.0.0.1:{target.cluster_port}"] }}
"""
    )
    proc = subprocess.Popen([nats_server_bin, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # several route attempts
        assert all("stale" not in peers for peers in _routes(cluster).values())
    finally:
        proc.terminate()
        proc.wait(5)
