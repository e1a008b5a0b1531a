"""`seedctl deploy --playbook rotate-credentials --routes`: a new cluster route password, for real
(three nats-servers converged by the nats_seed role), without splitting the cluster: while it
runs, every pair of seeds is sampled for a route and messages cross the mesh continuously;
afterwards the old password is worth nothing (a server presenting it is refused).
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import threading
import time

import httpx
import nats
import pytest
from click.testing import CliRunner

from seed import render, secrets
from seed.cli import cli

from .cluster import make_cluster, wait_until

pytestmark = [pytest.mark.ansible, pytest.mark.slow, pytest.mark.timeout(900)]

SUBJECT = "tbfed.v1.task.node-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, nats_server_bin):
    c = make_cluster(tmp_path_factory.mktemp("ansible-routes"), nats_server_bin)
    try:
        first = c.deploy()
        assert first.ok, c.output()
        yield c
    finally:
        c.stop_all()


def _routes(cluster) -> dict[str, set[str]]:
    out = {}
    for name in cluster.names:
        try:
            routez = httpx.get(cluster.monitor_url(name) + "/routez", timeout=1).json()
            out[name] = {r.get("remote_name") for r in routez.get("routes") or ()}
        except (httpx.HTTPError, ValueError):
            out[name] = set()
    return out


def test_route_password_rotation_keeps_the_mesh_whole(cluster, nats_server_bin, tmp_path):
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
