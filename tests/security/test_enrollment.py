"""Attacks on enrollment, performed against the real seedctl code and a real nats-server.

Each bad input is refused with one line naming it, and nothing is written (no registry entry,
no file for the node); each attack on the wire is refused by the server itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import pytest

from monitor_agent import natsjwt
from monitor_agent.agent import Agent
from monitor_agent.config import load_config
from monitor_agent.enrollment import _canonical
from monitor_agent.protocol import FederationState
from seed import enroll
from tests.plugins.enrollment import issued_jwt, jwt_connect, make_node, seedctl, start_operator_seed
from tests.plugins.tools import wait_for


@pytest.fixture(scope="module")
def op_seed(tmp_path_factory, nats_server_bin):
    handle = start_operator_seed(tmp_path_factory.mktemp("op-seed-sec"), nats_server_bin)
    yield handle
    with contextlib.suppress(Exception):
        handle.stop()


def _snapshot(seed) -> dict:
    """Every file under the secrets dir with its bytes: "nothing written" is checked against it."""
    return {p: p.read_bytes() for p in sorted(seed.secrets_dir.rglob("*")) if p.is_file()}


def _refused(seed, tmp_path, request_path, needle: str) -> None:
    before = _snapshot(seed)
    out = tmp_path / "out"
    res = seedctl("enroll", "approve", request_path, "--spec", seed.spec_path, "--out", out)
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert _snapshot(seed) == before and not out.exists()


def test_tampered_request_is_refused(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    path = node.request()
    body = json.loads(path.read_text())
    body["region"] = "ASIA"  # changed after signing
    path.write_text(json.dumps(body))
    _refused(op_seed, tmp_path, path, "signature does not verify")


def test_request_signed_by_another_key_is_refused(op_seed, tmp_path):
    victim, attacker = make_node(tmp_path / "v"), make_node(tmp_path / "a")
    body = json.loads(victim.request().read_text())
    body["sig"] = attacker.identity.sign(_canonical(body))  # the attacker claims the victim's key
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(body))
    _refused(op_seed, tmp_path, path, "signature does not verify")


def test_node_id_not_matching_its_key_is_refused(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    body = json.loads(node.request().read_text())
    body["nodeId"] = "node-0123456789"  # someone else's id, correctly signed by this key
    body["sig"] = node.identity.sign(_canonical(body))
    path = tmp_path / "mismatch.json"
    path.write_text(json.dumps(body))
    _refused(op_seed, tmp_path, path, "does not match its key")


def test_request_with_extra_fields_is_refused(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    body = json.loads(node.request().read_text())
    body["role"] = "admin"
    body["sig"] = node.identity.sign(_canonical(body))
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(body))
    _refused(op_seed, tmp_path, path, "unknown field(s) role")


def test_revoking_an_unknown_node_is_refused(op_seed):
    before = _snapshot(op_seed)
    res = seedctl("enroll", "revoke", "node-ffffffffff", "--spec", op_seed.spec_path)
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == "seedctl: unknown nodeId 'node-ffffffffff': not enrolled here (seedctl enroll list)"
    )
    assert _snapshot(op_seed) == before


def test_enrolled_node_cannot_publish_as_another_node(op_seed, tmp_path):
    a, b = make_node(tmp_path / "a"), make_node(tmp_path / "b")
    jwt_a = issued_jwt(enroll.approve(op_seed.spec, a.request(), tmp_path / "oa").credentials)
    jwt_b = issued_jwt(enroll.approve(op_seed.spec, b.request(), tmp_path / "ob").credentials)

    async def attack():
        errors, got = [], []

        async def on_error(exc):
            errors.append(str(exc))

        async def on_msg(msg):
            got.append(msg.subject)

        receiver = await jwt_connect(op_seed.url, jwt_b, b)
        await receiver.subscribe("tbfed.v1.>", cb=on_msg)
        await receiver.flush()
        attacker = await jwt_connect(op_seed.url, jwt_a, a, error_cb=on_error)
        await attacker.publish(f"tbfed.v1.task.{b.node_id}", b"{}")  # impersonation
        await attacker.publish(f"tbfed.v1.task.{a.node_id}", b"{}")  # its own subject: allowed
        await attacker.flush()
        # An enrolled node may not read other nodes' inboxes either.
        await attacker.subscribe(f"_INBOX.{b.node_id}.>")
        await attacker.flush()
        await asyncio.sleep(0.3)
        await attacker.close()
        await receiver.close()
        return errors, got

    errors, got = asyncio.run(attack())
    assert any(f'permissions violation for publish to "tbfed.v1.task.{b.node_id}"' in e for e in errors)
    assert any(
        f'permissions violation for subscription to "_inbox.{b.node_id}.>"' in e.lower() for e in errors
    )
    assert got == [f"tbfed.v1.task.{a.node_id}"]


def test_another_nodes_jwt_is_useless(op_seed, tmp_path):
    """A stolen JWT file is public material: without the owner's key the server refuses it."""
    owner, thief = make_node(tmp_path / "o"), make_node(tmp_path / "t")
    jwt = issued_jwt(enroll.approve(op_seed.spec, owner.request(), tmp_path / "o-out").credentials)
    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(jwt_connect(op_seed.url, jwt, thief))


def test_expired_jwt_is_refused_by_the_seed_and_named_by_the_agent(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    enroll.approve(op_seed.spec, node.request(), tmp_path / "out")
    expired = enroll.issue_user_jwt(
        op_seed.spec, node.node_id, enroll.load_registry(op_seed.spec)[node.node_id]["key"], 1, now=10**9
    )
    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(jwt_connect(op_seed.url, expired, node))

    cred = tmp_path / "expired.jwt"
    cred.write_text(enroll.jwt_file_text(op_seed.spec, node.node_id, expired))
    env = {
        "DATA_DIR": str(node.data_dir),
        "NODE_LOG_SOURCE": "none",
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": op_seed.url,
        "FEDERATION_CREDENTIALS": str(cred),
        "FEDERATION_RECONNECT_TIMEOUT": "300",
    }
    agent = Agent(load_config(env))
    agent.start()
    try:
        status = wait_for(lambda: (s := agent.federation.status_fields())["lastError"] and s, 10, what="an error")
        assert status["state"] == FederationState.ERROR.value  # read with its error, in one step
        assert status["lastError"]["code"] == "FED_002"
        assert "expired at 2001-09-10T01:46:40Z" in status["lastError"]["message"]
        assert f"seedctl enroll renew {node.node_id}" in status["lastError"]["message"]
        # The renewed file is picked up by the next attempt: no restart of the agent.
        cred.write_text(
            enroll.jwt_file_text(
                op_seed.spec,
                node.node_id,
                enroll.issue_user_jwt(
                    op_seed.spec, node.node_id, enroll.load_registry(op_seed.spec)[node.node_id]["key"], 1
                ),
            )
        )
        wait_for(
            lambda: agent.federation.state == FederationState.CONNECTED, 10, what="CONNECTED after renewal"
        )
    finally:
        agent.stop()


def test_seed_without_a_resolver_is_refused(seed_factory, tmp_path):
    """The spec says operator mode but the running seed still has its static config: refuse."""
    seed = seed_factory()  # static users, no account resolver
    seed.rewrite(users=None, auth={"mode": "operator"})
    before = _snapshot(seed)
    node = make_node(tmp_path / "n")
    out = tmp_path / "out"
    res = seedctl("enroll", "approve", node.request(), "--spec", seed.spec_path, "--out", out)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "seed-1" in lines[0] and "without this operator's account resolver" in lines[0]
    assert _snapshot(seed) == before and not out.exists()


def _forge(token: str, **nats_changes) -> str:
    """The same JWT with its permissions widened, keeping the issuer's signature."""
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["nats"].update(nats_changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_jwt_with_widened_permissions_is_refused(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    jwt = issued_jwt(enroll.approve(op_seed.spec, node.request(), tmp_path / "out").credentials)
    forged = _forge(jwt, pub={"allow": [">"]})
    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(jwt_connect(op_seed.url, forged, node))


def test_jwt_signed_by_a_key_of_our_own_making_is_refused(op_seed, tmp_path):
    """An attacker who knows the federation account's public key signs a user JWT himself."""
    node = make_node(tmp_path / "n")
    op = enroll.operator(op_seed.spec, create=False)
    rogue = natsjwt.keypair(natsjwt.new_seed("account"))
    claims = enroll.user_claims(
        op_seed.spec,
        node.node_id,
        natsjwt.user_public_key(node.identity.public_raw),
        op.fed_public,
        int(time.time()) + 3600,
    )
    claims["nats"]["pub"] = {"allow": [">"]}
    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(jwt_connect(op_seed.url, natsjwt.encode(claims, rogue), node))


def test_revoked_node_cannot_be_approved_or_renewed_again(op_seed, tmp_path):
    node = make_node(tmp_path / "n")
    request = node.request()
    enroll.approve(op_seed.spec, request, tmp_path / "out")
    assert seedctl("enroll", "revoke", node.node_id, "--spec", op_seed.spec_path).returncode == 0
    before = _snapshot(op_seed)
    for args in (
        ("approve", request, "--out", tmp_path / "again"),
        ("renew", node.node_id, "--out", tmp_path / "again"),
    ):
        res = seedctl("enroll", *args, "--spec", op_seed.spec_path)
        assert res.returncode == 2 and "revoked" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert _snapshot(op_seed) == before and not (tmp_path / "again").exists()
