"""Node identity: key file, salt, nodeId, signatures, salted task ids."""

from __future__ import annotations

import hashlib
import stat

import pytest

from monitor_agent.errors import FederationError
from monitor_agent.identity import load_identity, node_id_for_key, verify
from monitor_agent.protocol import DERIVED_NODE_ID_RE


def test_first_start_creates_a_0600_key_and_salt_and_later_starts_reuse_them(tmp_path):
    first = load_identity(tmp_path)
    for name in ("node.key", "node.salt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert DERIVED_NODE_ID_RE.match(first.node_id)
    assert first.node_id == "node-" + hashlib.sha256(first.public_raw).hexdigest()[:10]
    again = load_identity(tmp_path)
    assert again.node_id == first.node_id and again.task_id("exec") == first.task_id("exec")


def test_task_ids_are_stable_per_node_and_unlinkable_across_nodes(tmp_path):
    a, b = load_identity(tmp_path / "a"), load_identity(tmp_path / "b")
    eid = "550e8400-e29b-41d4-a716-446655440000"
    assert a.task_id(eid) == a.task_id(eid) and a.task_id(eid) != b.task_id(eid)
    assert a.task_id(eid).startswith("global-task-") and len(a.task_id(eid)) == len("global-task-") + 12


def test_signatures_verify_only_for_the_exact_payload_and_key(tmp_path):
    a, b = load_identity(tmp_path / "a"), load_identity(tmp_path / "b")
    headers = a.headers(b'{"v":1}')
    assert verify(headers["Tbf-Key"], headers["Tbf-Sig"], b'{"v":1}')
    assert not verify(headers["Tbf-Key"], headers["Tbf-Sig"], b'{"v":2}')
    assert not verify(b.public_b64, headers["Tbf-Sig"], b'{"v":1}')
    assert not verify("not base64!", "%%%", b"x")
    assert node_id_for_key(a.public_raw) == a.node_id


def test_custom_node_id_is_used_and_a_malformed_one_is_fed_005(tmp_path):
    assert load_identity(tmp_path, "my-custom-node").node_id == "my-custom-node"
    with pytest.raises(FederationError) as err:
        load_identity(tmp_path, "Bad_ID!")
    assert err.value.code == "FED_005"


def test_a_damaged_key_file_stops_with_a_clear_error(tmp_path):
    load_identity(tmp_path)
    (tmp_path / "node.key").write_text("not a key")
    with pytest.raises(FederationError, match="node.key"):
        load_identity(tmp_path)


def test_keys_written_before_read_the_same_and_sign_the_same(tmp_path):
    """Node keys are PKCS#8 PEM as `cryptography` writes them (agents before this one, and
    `openssl genpkey -algorithm ed25519`): read without it, same node id, same signatures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    old = Ed25519PrivateKey.generate()
    pem = old.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "node.key").write_bytes(pem)
    (tmp_path / "node.key").chmod(0o600)
    ident = load_identity(tmp_path)
    raw_public = old.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ident.public_raw == raw_public and ident.node_id == node_id_for_key(raw_public)
    assert ident.sign_raw(b"payload") == old.sign(b"payload")  # Ed25519 is deterministic
    new = tmp_path / "new"
    load_identity(new)
    assert isinstance(serialization.load_pem_private_key((new / "node.key").read_bytes(), None), Ed25519PrivateKey)


def test_a_key_of_another_algorithm_is_refused_by_name(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "node.key").write_bytes(pem)
    with pytest.raises(FederationError, match="not an Ed25519 key"):
        load_identity(tmp_path)


def test_the_agent_process_does_not_load_cryptography(tmp_path):
    """8 MB of the agent's 60 MB budget (issue 15): its own OpenSSL. The agent signs and
    verifies with libsodium; `cryptography` is only for key files in an unusual form."""
    import subprocess
    import sys

    code = (
        "import sys, monitor_agent.serve, monitor_agent.agent, monitor_agent.web, monitor_agent.enrollment\n"
        "from monitor_agent.federation import node_credentials\n"
        "from monitor_agent.identity import load_identity\n"
        f"ident = load_identity({str(tmp_path)!r}); ident.headers(b'x'); ident.seed\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'bcrypt'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
