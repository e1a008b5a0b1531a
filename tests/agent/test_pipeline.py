"""The receive pipeline's rules, without a network (the seed tests cover the same rules end to end)."""

from __future__ import annotations

import json
import time

from monitor_agent.federation.pipeline import Accepted, ReceivePipeline
from monitor_agent.identity import load_identity


def _msg(node_id: str, **over) -> dict:
    m = {
        "v": 1,
        "event": "task_received",
        "nodeId": node_id,
        "taskId": "global-task-0123456789ab",
        "chainId": 1,
        "blockNumber": 5,
        "taskType": "js",
        "status": "received",
        "executionTimeMs": None,
        "timestamp": "2024-01-15T10:30:00Z",
    }
    m.update(over)
    return m


def _run(p, ident, msg, kind="task", node=None, headers=None):
    payload = json.dumps(msg).encode()
    hdrs = ident.headers(payload) if headers is None else headers
    return p.process(f"tbfed.v1.{kind}.{node or msg['nodeId']}", payload, hdrs, time.time())


def test_field_rules_beyond_types(tmp_path):
    ident = load_identity(tmp_path)
    p = ReceivePipeline("node-0000000000")
    nid = ident.node_id
    assert isinstance(_run(p, ident, _msg(nid)), Accepted)
    for bad in (
        {"status": "completed"},  # disagrees with event
        {"taskId": "0x" + "ab" * 20},
        {"taskType": "Has Spaces"},
        {"chainId": -1},
        {"executionTimeMs": 10**12},
        {"timestamp": "2024-01-15 10:30:00"},
        {"chainId": 1.5},
    ):
        assert _run(p, ident, _msg(nid, **bad)).reason == "schema", bad
    assert _run(p, ident, _msg(nid, v="1")).reason == "version"
    assert _run(p, ident, _msg(nid), kind="stats").reason == "schema"  # a task on the stats subject
    assert _run(p, ident, _msg(nid), kind="weird").reason == "subject_mismatch"


def test_derived_node_ids_must_match_their_key_and_custom_ids_are_pinned(tmp_path):
    a, b = load_identity(tmp_path / "a"), load_identity(tmp_path / "b")
    p = ReceivePipeline("node-0000000000")
    assert _run(p, b, _msg(a.node_id, taskId="global-task-000000000001")).reason == "key_mismatch"
    custom = load_identity(tmp_path / "c", "operator-eu-1")
    assert isinstance(_run(p, custom, _msg("operator-eu-1")), Accepted)
    assert _run(p, a, _msg("operator-eu-1", taskId="global-task-000000000002")).reason == "key_mismatch"
    assert _run(p, custom, _msg("operator-eu-1")).reason == "duplicate"


def test_unsigned_messages_pass_only_when_signatures_are_optional(tmp_path):
    ident = load_identity(tmp_path)
    strict = ReceivePipeline("node-0000000000")
    lax = ReceivePipeline("node-0000000000", require_signatures=False)
    assert _run(strict, ident, _msg(ident.node_id), headers={}).reason == "unsigned"
    assert isinstance(_run(lax, ident, _msg(ident.node_id), headers={}), Accepted)
    # A present but wrong signature is never accepted.
    assert (
        _run(
            lax,
            ident,
            _msg(ident.node_id, taskId="global-task-000000000003"),
            headers={"Tbf-Key": ident.public_b64, "Tbf-Sig": "AAAA"},
        ).reason
        == "bad_signature"
    )


def test_presence_rate_and_offline_always_heard(tmp_path):
    ident = load_identity(tmp_path)
    p = ReceivePipeline("node-0000000000")
    presence = {
        "v": 1,
        "nodeId": ident.node_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # presence must be fresh
        "region": "SA",
        "version": "0.1.0",
        "tasksReported": 0,
    }
    assert isinstance(_run(p, ident, {**presence, "event": "node_online"}, kind="presence"), Accepted)
    assert _run(p, ident, {**presence, "event": "node_heartbeat"}, kind="presence").reason == "rate_limited"
    assert isinstance(_run(p, ident, {**presence, "event": "node_offline"}, kind="presence"), Accepted)
    assert (
        _run(p, ident, {**presence, "event": "node_online", "region": "MARS"}, kind="presence").reason
        == "schema"
    )
