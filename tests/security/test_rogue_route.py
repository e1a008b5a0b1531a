"""Attack: a stranger's nats-server that knows the cluster name and one seed's route address
tries to join the seed mesh (the cluster name is in every route INFO). Before route
authentication it joined, received every federation message, injected messages members
received and listed the seeds' clients through its own $SYS. It must be refused: no
federation message reaches it, nothing it publishes reaches members, /routez never lists it.

Real nats-server processes: a 2-seed cluster started by seedctl, a rogue started by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

import httpx
import nats
import pytest
import trustme

from tests.plugins.tools import http_get, wait_for

SUBJECT = "tbfed.v1.task.node-aaaaaaaaaa"
ROGUE_NAME = "rogue"


def _route_names(monitor_url: str) -> set[str]:
    routez = http_get(f"{monitor_url}/routez", timeout=3).json()
    return {r.get("remote_name") or r.get("remote_id") for r in routez.get("routes") or ()}


def _write_pem_pair(tmp_path, ca: trustme.CA, stem: str):
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / f"{stem}.pem", tmp_path / f"{stem}-key.pem", tmp_path / f"{stem}-ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key, ca_file


@contextlib.contextmanager
def _rogue(nats_server_bin, tmp_path, port_factory, cluster_name, seed_route, route_user="", tls=None):
    """A nats-server with the cluster's name, dialing one seed's route port; accounts named
    like the seeds' (FED, SYS) so that, if it joined, it would get their traffic."""
    client, cport, mport = port_factory(), port_factory(), port_factory()
    host_port = seed_route.split("://", 1)[1]
    route = f"nats-route://{route_user + '@' if route_user else ''}{host_port}"
    tls_block = ""
    if tls:
        cert, key, ca = tls
        tls_block = f'tls {{ cert_file: "{cert}", key_file: "{key}", ca_file: "{ca}", verify: true }}'
    conf = tmp_path / "rogue.conf"
    conf.write_text(
        f"""server_name: "{ROGUE_NAME}"
listen: "127.0.0.1:{client}"
http: "127.0.0.1:{mport}"
cluster {{
  name: "{cluster_name}"
  listen: "127.0.0.1:{cport}"
  {tls_block}
  routes: ["{route}"]
}}
accounts {{
  SYS: {{ users: [{{user: "sys", password: "sys"}}] }}
  FED: {{ users: [{{user: "spy", password: "spy"}}] }}
}}
system_account: SYS
"""
    )
    log = tmp_path / "rogue.log"
    proc = subprocess.Popen([nats_server_bin, "-c", str(conf), "-l", str(log)])
    try:
        def up() -> bool:  # refused until the rogue server listens
            try:
                return http_get(f"http://127.0.0.1:{mport}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, what="rogue nats-server up")
        yield {
            "client": f"nats://spy:spy@127.0.0.1:{client}",
            "monitor": f"http://127.0.0.1:{mport}",
            "log": log,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _seed_log_mentions_refusal(handle) -> bool:
    text = (handle.state_dir / "seed-1" / "nats-server.log").read_text(errors="replace")
    return any(
        w in text for w in ("Router connection closed: Authentication Failure", "TLS route handshake error")
    )


async def _cross_traffic(handle, rogue) -> tuple[list, list, list]:
    """Members' traffic in both directions with the rogue listening and injecting."""
    member_got, rogue_got, control = [], [], []
    member = await nats.connect(handle.url_for("observer", 1), allow_reconnect=False)
    spy = await nats.connect(rogue["client"], allow_reconnect=False)
    pub = await nats.connect(handle.url_for("monitor", 0), allow_reconnect=False)
    try:

        async def on_member(msg):
            (control if msg.data.startswith(b"member") else member_got).append(msg.data)

        async def on_spy(msg):
            rogue_got.append((msg.subject, msg.data))

        await member.subscribe("tbfed.v1.>", cb=on_member)
        await spy.subscribe(">", cb=on_spy)
        await member.flush()
        await spy.flush()
        # The control: a member's message crosses the real route (so silence below means refusal).
        for _ in range(100):
            await pub.publish(SUBJECT, b"member says hi")
            await spy.publish(SUBJECT, b"injected by the rogue")
            await pub.flush()
            await spy.flush()
            await asyncio.sleep(0.05)
            if control:
                break
        await asyncio.sleep(0.5)  # time for a leak to arrive
    finally:
        for nc in (member, spy, pub):
            await nc.close()
    return control, member_got, rogue_got


def _assert_refused(handle, rogue):
    # Either seed-1 refused the route (the defence) or the rogue joined (then the checks below say how).
    wait_for(
        lambda: _seed_log_mentions_refusal(handle) or ROGUE_NAME in _route_names(handle.monitor_urls[0]),
        timeout=10,
        what="seed-1 to refuse or accept the rogue's route",
    )
    control, member_got, rogue_got = asyncio.run(_cross_traffic(handle, rogue))
    assert control, "the members' own route carried nothing: the test proves nothing"
    assert member_got == [], "a message injected by the rogue reached a member"
    leaked = [(s, d) for s, d in rogue_got if s.startswith("tbfed.") and not d.startswith(b"injected")]
    assert leaked == [], "a federation message reached the rogue"
    for url in handle.monitor_urls:
        assert ROGUE_NAME not in _route_names(url)
    assert _route_names(rogue["monitor"]) == set()
    assert http_get(f"{rogue['monitor']}/varz", timeout=3).json()["routes"] == 0


@pytest.fixture
def cluster(seed_factory):
    def make(**cluster):
        handle = seed_factory(servers=2, cluster={"name": "tbfed-seeds", **cluster})
        wait_for(lambda: "seed-2" in _route_names(handle.monitor_urls[0]), what="seed-1 routed to seed-2")
        return handle

    return make


def test_rogue_without_route_credentials_is_refused(cluster, nats_server_bin, tmp_path, port_factory):
    handle = cluster()
    seed_route = handle.spec.servers[0].route_url
    with _rogue(nats_server_bin, tmp_path, port_factory, "tbfed-seeds", seed_route) as rogue:
        _assert_refused(handle, rogue)


def test_rogue_guessing_the_route_user_is_refused(cluster, nats_server_bin, tmp_path, port_factory):
    handle = cluster()
    seed_route = handle.spec.servers[0].route_url
    with _rogue(
        nats_server_bin, tmp_path, port_factory, "tbfed-seeds", seed_route, route_user="route:route"
    ) as rogue:
        _assert_refused(handle, rogue)


def test_route_tls_refuses_a_certificate_of_another_ca_even_with_the_route_password(
    cluster, nats_server_bin, tmp_path, port_factory
):
    cert, key, ca = _write_pem_pair(tmp_path, trustme.CA(), "seed")
    handle = cluster(tls={"cert": str(cert), "key": str(key), "ca": str(ca)})
    conf = (handle.state_dir / "seed-1" / "nats-server.conf").read_text()
    assert "verify: true" in conf and str(ca) in conf
    # The worst case: the route password leaked, but the certificate comes from another CA.
    from seed.render import route_password

    stolen = f"route:{route_password(handle.spec, create=False)}"
    foreign = _write_pem_pair(tmp_path, trustme.CA(), "rogue")
    seed_route = handle.spec.servers[0].route_url
    with _rogue(
        nats_server_bin, tmp_path, port_factory, "tbfed-seeds", seed_route, route_user=stolen, tls=foreign
    ) as rogue:
        _assert_refused(handle, rogue)
    time.sleep(0)  # (the members' routes stayed up throughout)
    assert "seed-2" in _route_names(handle.monitor_urls[0])
