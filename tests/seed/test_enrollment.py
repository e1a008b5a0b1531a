"""Enrollment against real nats-servers: operator (JWT) mode without reloads, static mode by request.

What a seed operator and a node operator rely on: an approved node connects at once and the
seed's config never changes (/varz config_digest); a renewed JWT is taken up without a gap; a
revoked node is cut off within seconds and stays out; many JWT users come back after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time

import pytest
import yaml

from monitor_agent.agent import Agent
from monitor_agent.config import load_config
from monitor_agent.protocol import FederationState
from seed import enroll, lifecycle
from seed.spec import load_spec
from tests.plugins.enrollment import issued_jwt, jwt_connect, make_node, seedctl, start_operator_seed, varz
from tests.plugins.tools import http_get, wait_for


@pytest.fixture(scope="module")
def op_seed(tmp_path_factory, nats_server_bin):
    handle = start_operator_seed(tmp_path_factory.mktemp("op-seed"), nats_server_bin)
    yield handle
    with contextlib.suppress(Exception):
        handle.stop()


@pytest.fixture
def agents():
    made: list[Agent] = []

    def make(env: dict) -> Agent:
        env = {
            "NODE_LOG_SOURCE": "none",
            "ENABLE_FEDERATION": "true",
            "FEDERATION_RECONNECT_TIMEOUT": "300",
            **env,
        }
        agent = Agent(load_config(env))
        made.append(agent)
        agent.start()
        return agent

    yield make
    for agent in made:
        with contextlib.suppress(Exception):
            agent.stop()


def _enrolled_agent(seed, agents, tmp_path, name="n"):
    node = make_node(tmp_path / name)
    out = tmp_path / f"{name}-out"
    res = seedctl("enroll", "approve", node.request(), "--spec", seed.spec_path, "--out", out)
    assert res.returncode == 0, res.stderr
    cred = out / f"{node.node_id}.jwt"
    agent = agents(
        {"DATA_DIR": str(node.data_dir), "FEDERATION_SEED_URL": seed.url, "FEDERATION_CREDENTIALS": str(cred)}
    )
    return node, cred, agent


def test_approve_connects_the_agent_with_no_seed_reload(op_seed, agents, tmp_path):
    conf = lifecycle.conf_path(op_seed.spec, op_seed.names[0], op_seed.state_dir)
    before_digest, before_conf = varz(op_seed)["config_digest"], conf.read_bytes()
    node, cred, agent = _enrolled_agent(op_seed, agents, tmp_path)

    wait_for(lambda: agent.federation.state == FederationState.CONNECTED, 10, what="agent CONNECTED")
    text = cred.read_text()  # public material only: no seed section, no seed line
    assert (
        "no secret" in text
        and "SEED" not in text
        and not any(ln.startswith("SU") for ln in text.splitlines())
    )
    assert varz(op_seed)["config_digest"] == before_digest  # the seed never reloaded
    assert conf.read_bytes() == before_conf
    conns = http_get(f"{op_seed.monitor_urls[0]}/connz?auth=true", timeout=5).json()["connections"]
    assert agent.federation._node_creds.user_key in {c.get("authorized_user") for c in conns}
    listed = seedctl("enroll", "list", "--spec", op_seed.spec_path, "--json")
    assert '"status": "active"' in listed.stdout and node.node_id in listed.stdout


def test_renewed_jwt_is_taken_up_without_downtime(op_seed, agents, tmp_path):
    node, cred, agent = _enrolled_agent(op_seed, agents, tmp_path)
    wait_for(lambda: agent.federation.state == FederationState.CONNECTED, 10, what="agent CONNECTED")
    old = issued_jwt(cred)
    time.sleep(1.1)  # a new iat
    res = seedctl("enroll", "renew", node.node_id, "--spec", op_seed.spec_path, "--out", tmp_path / "renewed")
    assert res.returncode == 0, res.stderr
    new = issued_jwt(tmp_path / "renewed" / f"{node.node_id}.jwt")
    assert new != old
    events = agent.bus.subscribe(1000)
    shutil.copy(tmp_path / "renewed" / f"{node.node_id}.jwt", cred)  # the node operator replaces the file

    wait_for(lambda: agent.federation._node_creds.token.text == new, 15, what="agent presenting the new JWT")
    wait_for(lambda: agent.federation.state == FederationState.CONNECTED, 5, what="CONNECTED again")
    states = []
    while (event := events.get(timeout=0)) is not None:
        if event["type"] == "federation_status":
            states.append(event["data"]["state"])
    assert "RECONNECTING" in states  # it did switch connections
    assert "ERROR" not in states and agent.federation.last_error is None  # a reconnect, not an outage


def test_revoke_cuts_the_connected_agent_off_and_keeps_it_out(op_seed, agents, tmp_path):
    node, cred, agent = _enrolled_agent(op_seed, agents, tmp_path)
    wait_for(lambda: agent.federation.state == FederationState.CONNECTED, 10, what="agent CONNECTED")
    digest = varz(op_seed)["config_digest"]

    events = agent.bus.subscribe(1000)  # every state it enters from here on
    res = seedctl("enroll", "revoke", node.node_id, "--spec", op_seed.spec_path)
    assert res.returncode == 0, res.stderr
    assert "seeds updated: seed-1" in res.stdout  # printed once the seed holds the revocation
    t0 = time.monotonic()  # from here the seed's part is timed, not the CLI's start-up on a busy host
    wait_for(lambda: agent.federation.state != FederationState.CONNECTED, 10, what="agent cut off")
    cut_s = time.monotonic() - t0
    assert cut_s <= 5.0
    wait_for(lambda: (agent.federation.last_error or {}).get("code") == "FED_002", 5, what="FED_002")
    assert "revoked" in agent.federation.last_error["message"]
    time.sleep(1.0)  # several retry periods: it never gets back in
    states = [e["data"]["state"] for e in iter(lambda: events.get(timeout=0), None) if e["type"] == "federation_status"]
    assert "CONNECTED" not in states and agent.federation.state != FederationState.CONNECTED, states

    async def reconnect():
        nc = await jwt_connect(op_seed.url, issued_jwt(cred), node)
        await nc.close()

    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(reconnect())
    assert varz(op_seed)["config_digest"] == digest
    row = next(r for r in enroll.list_enrolled(op_seed.spec) if r["nodeId"] == node.node_id)
    assert row["status"] == "revoked"


def test_many_enrollments_in_one_account_and_reconnect_after_a_seed_restart(tmp_path, nats_server_bin):
    """N approvals, N JWT users connected, seed restarted, all N back (bench/enrollment.py: N = 1000)."""
    n = 100
    seed = start_operator_seed(tmp_path / "seed", nats_server_bin)
    try:
        nodes = [make_node(tmp_path / f"n{i}") for i in range(n)]
        tokens = []
        for i, node in enumerate(nodes):
            approval = enroll.approve(seed.spec, node.request(), tmp_path / "out")
            tokens.append(issued_jwt(approval.credentials))
            assert approval.node_id == node.node_id, i
        assert len(enroll.load_registry(seed.spec)) == n

        async def run():
            reconnected = asyncio.Event()
            count = {"n": 0}

            async def on_reconnect():
                count["n"] += 1
                if count["n"] == n:
                    reconnected.set()

            clients = await asyncio.gather(
                *(
                    jwt_connect(
                        seed.url,
                        tok,
                        node,
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.2,
                        reconnected_cb=on_reconnect,
                    )
                    for tok, node in zip(tokens, nodes, strict=True)
                )
            )
            assert http_get(f"{seed.monitor_urls[0]}/varz", timeout=5).json()["connections"] == n
            await asyncio.to_thread(seed.stop)
            await asyncio.to_thread(seed.start)
            await asyncio.wait_for(reconnected.wait(), 60)
            assert all(c.is_connected for c in clients)
            await asyncio.gather(*(c.close() for c in clients))

        asyncio.run(run())
    finally:
        seed.stop()


def test_static_mode_approve_adds_an_nkey_user_for_the_nodes_own_key(seed_factory, agents, tmp_path):
    seed = seed_factory()
    node = make_node(tmp_path / "n")
    out = tmp_path / "out"
    res = seedctl("enroll", "approve", node.request(), "--spec", seed.spec_path, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "seedctl reload" in res.stdout
    cred = out / f"{node.node_id}.pub"
    spec = load_spec(seed.spec_path)
    rendered = (spec.rendered_dir / "seed-1" / "nats-server.conf").read_text()
    assert enroll.static_users(spec)[node.node_id] in rendered
    seed.spec = spec
    seed.reload()
    agent = agents(
        {"DATA_DIR": str(node.data_dir), "FEDERATION_SEED_URL": seed.url, "FEDERATION_CREDENTIALS": str(cred)}
    )
    wait_for(lambda: agent.federation.state == FederationState.CONNECTED, 10, what="static enrolled agent")


@pytest.mark.parametrize(
    ("auth", "extra", "needle"),
    [
        ({"mode": "jwt"}, {}, "auth.mode: 'jwt' is not one of static, operator"),
        ({"mode": "operator", "resolver": "url"}, {}, "auth.resolver: 'url' is not one of full"),
        (
            {"mode": "operator"},
            {"users": [{"name": "monitor", "role": "monitor"}]},
            "users: operator mode has no users",
        ),
        ({"mode": "operator", "user_jwt_days": 0}, {}, "auth.user_jwt_days: 0 is out of range 1..3650"),
    ],
)
def test_auth_spec_errors_name_the_field(tmp_path, auth, extra, needle):
    from seed.spec import SpecError

    data = {"name": "t", "servers": [{"name": "seed-1", "client_port": 14222, "monitor_port": 18222}]}
    data.update(extra, auth=auth)
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=re.escape(needle)):
        load_spec(path)


def test_agent_reminds_to_renew_a_jwt_near_expiry(op_seed, agents, tmp_path, caplog):
    node = make_node(tmp_path / "n")
    out = tmp_path / "out"
    res = seedctl(
        "enroll", "approve", node.request(), "--spec", op_seed.spec_path, "--out", out, "--days", "3"
    )
    assert res.returncode == 0, res.stderr
    listed = seedctl("enroll", "list", "--spec", op_seed.spec_path, "--json")
    assert any(r["nodeId"] == node.node_id and r["status"] == "expiring" for r in json.loads(listed.stdout))
    caplog.set_level("WARNING", logger="monitor_agent.federation")
    agents(
        {
            "DATA_DIR": str(node.data_dir),
            "FEDERATION_SEED_URL": op_seed.url,
            "FEDERATION_CREDENTIALS": str(out / f"{node.node_id}.jwt"),
        }
    )
    wait_for(lambda: f"seedctl enroll renew {node.node_id}" in caplog.text, 10, what="renewal reminder")


def test_static_user_commands_refuse_an_operator_mode_spec(op_seed):
    res = seedctl("users", "add", "grafana", "--role", "observer", "--spec", op_seed.spec_path)
    assert res.returncode == 2 and "operator mode" in res.stderr


def test_agent_with_a_jwt_and_another_node_id_says_so(op_seed, agents, tmp_path):
    node = make_node(tmp_path / "n")
    approval = enroll.approve(op_seed.spec, node.request(), tmp_path / "out")
    agent = agents(
        {
            "DATA_DIR": str(node.data_dir),
            "FEDERATION_SEED_URL": op_seed.url,
            "FEDERATION_CREDENTIALS": str(approval.credentials),
            "FEDERATION_NODE_ID": "acme-node-b",
        }
    )
    wait_for(lambda: agent.federation.last_error, 10, what="an error")
    assert agent.federation.last_error["code"] == "FED_002"
    assert f"only as {node.node_id}" in agent.federation.last_error["message"]
    assert "unset FEDERATION_NODE_ID" in agent.federation.last_error["message"]
