"""Two real agents on a real seed: publish, receive, store; and every kind of bad message."""

from __future__ import annotations

import json
import time

import pytest
from msgspec import to_builtins

from monitor_agent.identity import load_identity
from monitor_agent.protocol import FederationState
from monitor_agent.store import now_ms
from monitor_agent.web.serializers import federation_task
from tests.plugins.messages import signed as _signed
from tests.plugins.messages import task_message as _task
from tests.plugins.messages import wire_ts as _now_ts

from .conftest import agent_env, task_event, wait_for

EXEC_ID = "550e8400-e29b-41d4-a716-446655440000"


@pytest.fixture
def pair(module_seed, make_agent, tmp_path):
    url = module_seed.url_for("monitor")
    # B first, so that it hears A's node_online (peers learn a region from presence).
    b = make_agent(agent_env(url, tmp_path / "b"))
    wait_for(lambda: b.status()["connected"], what="B connected")
    a = make_agent(agent_env(url, tmp_path / "a", FEDERATION_REGION="eu-west"))
    wait_for(lambda: a.status()["connected"], what="A connected")
    return a, b


def test_task_published_by_a_is_stored_by_b_with_a_as_source_and_never_echoed(pair):
    a, b = pair
    a.submit_task_event(
        task_event("received", EXEC_ID, chain_id=43113, block_number=30_000_000, task_type="js")
    )
    a.submit_task_event(task_event("completed", EXEC_ID, execution_time_ms=245, exit_code=0))

    rows = wait_for(
        lambda: (r := b.store.query_federation_tasks(10)[0]) and len(r) == 2 and r, what="2 rows at B"
    )
    rows = to_builtins([federation_task(r) for r in rows])  # as GET /api/federation/tasks/global shows them
    assert {r["status"] for r in rows} == {"received", "completed"}
    assert all(r["sourceNode"] == a.identity.node_id for r in rows)
    assert rows[0]["taskId"] == a.identity.task_id(EXEC_ID) and EXEC_ID not in json.dumps(rows)
    assert rows[0] == {**rows[0], "chainId": 43113, "blockNumber": 30_000_000, "taskType": "js"}
    completed = next(r for r in rows if r["status"] == "completed")
    assert completed["executionTimeMs"] == 245

    # B sees A as an online peer in its region; A stores nothing of its own.
    peers = wait_for(lambda: b.store.list_peers(), what="peer A at B")
    assert peers[0].node_id == a.identity.node_id and peers[0].online(now_ms()) and peers[0].region == "EU-WEST"
    time.sleep(0.3)
    assert a.store.query_federation_tasks(10) == ([], 0)
    assert all(p.node_id != a.identity.node_id for p in a.store.list_peers())
    assert a.federation.counters()["drops"].get("own", 0) == 0  # no_echo: the seed never sends them back

    # Re-delivery of the same local event (a source restarting) sends nothing new. Task events only
    # are counted: presence and stats go out on their own clocks.
    def task_sends() -> int:
        return sum(".task." in m["subject"] for m in a.outbox_snapshot())

    wait_for(lambda: task_sends() == 2, what="both task events confirmed")
    a.submit_task_event(task_event("completed", EXEC_ID, execution_time_ms=245, exit_code=0))
    time.sleep(0.3)
    assert task_sends() == 2


def test_receive_only_mode_publishes_nothing(module_seed, make_agent, raw_nats, tmp_path):
    spy = raw_nats(module_seed.url_for("monitor"))
    spy.capture()
    quiet = make_agent(
        agent_env(
            module_seed.url_for("monitor"),
            tmp_path / "q",
            FEDERATION_BROADCAST_TASKS="false",
            FEDERATION_BROADCAST_STATS="false",
            FEDERATION_BROADCAST_INTERVAL_MS="100",
        )
    )
    wait_for(lambda: quiet.status()["connected"], what="receive-only agent connected")
    for i in range(3):
        quiet.submit_task_event(task_event("received", f"exec-{i}", chain_id=1, task_type="js"))
        quiet.submit_task_event(task_event("completed", f"exec-{i}", execution_time_ms=10, exit_code=0))
    # ...yet it receives: a peer's signed task reaches it.
    peer = load_identity(tmp_path / "peer")
    spy.publish(f"tbfed.v1.task.{peer.node_id}", *_signed(peer, _task(peer.node_id, 1)))
    wait_for(lambda: quiet.store.query_federation_tasks(10)[1] == 1, what="peer task received")
    assert quiet.store.list_local_tasks(10, 0, None)[1] == 3
    time.sleep(1.0)
    quiet.stop()  # a clean shutdown: no node_offline either
    time.sleep(0.3)
    assert [s for s, _, _ in spy.captured if quiet.identity.node_id in s] == []
    assert quiet.outbox_snapshot() == []


def test_bad_messages_are_dropped_counted_and_b_stays_connected(pair, raw_nats, tmp_path):
    _, b = pair
    attacker = raw_nats(b.config.seed_urls[0])
    good = load_identity(tmp_path / "good")
    other = load_identity(tmp_path / "other")
    nid = good.node_id
    subj = f"tbfed.v1.task.{nid}"

    # A first good message pins `good`'s key for its nodeId.
    attacker.publish(subj, *_signed(good, _task(nid, 1)))
    wait_for(lambda: b.store.query_federation_tasks(10)[1] == 1, what="the good message stored")

    cases = {
        "not_json": (subj, b"\xff\xfe garbage \x00", None, good),
        "oversize": (subj, json.dumps(_task(nid, 2, pad="x" * 2048)).encode(), None, good),
        "version": (subj, _task(nid, 3, v=2), None, good),
        "schema": (subj, _task(nid, 4, chainId="1"), None, good),
        "subject_mismatch": (f"tbfed.v1.task.{other.node_id}", _task(nid, 5), None, good),
        "unsigned": (subj, _task(nid, 6), {}, None),
        "bad_signature": (subj, _task(nid, 7), {"Tbf-Sig": good.sign(b"something else")}, good),
        "key_mismatch": (subj, _task(nid, 8), None, other),
        "future_timestamp": (subj, _task(nid, 9, timestamp=_now_ts(3600)), None, good),
    }
    for subject, msg, headers, signer in cases.values():
        payload = msg if isinstance(msg, bytes) else json.dumps(msg, separators=(",", ":")).encode()
        hdrs = signer.headers(payload) if signer else {}
        hdrs.update(headers or {})
        attacker.publish(subject, payload, hdrs or None)
    # The same good message again is a duplicate, stored once.
    attacker.publish(subj, *_signed(good, _task(nid, 1)))

    drops = wait_for(
        lambda: (d := b.federation.counters()["drops"]) and sum(d.values()) >= len(cases) + 1 and d,
        what="all drops counted",
    )
    for reason in cases:
        assert drops.get(reason) == 1, (reason, drops)
    assert drops.get("duplicate") == 1
    b.store.flush()
    assert b.store.query_federation_tasks(10)[1] == 1
    text = _metrics_text(b)
    assert 'federation_messages_dropped_total{code="FED_009",reason="version"} 1.0' in text
    assert 'federation_messages_dropped_total{code="FED_005",reason="key_mismatch"} 1.0' in text
    assert b.status()["state"] == "CONNECTED"


@pytest.mark.slow
def test_flood_of_10000_is_rate_limited_and_b_stays_connected(pair, raw_nats, tmp_path):
    _, b = pair
    flooder = raw_nats(b.config.seed_urls[0])
    ident = load_identity(tmp_path / "flood")
    items = []
    for n in range(10_000):
        payload, headers = _signed(ident, _task(ident.node_id, n))
        items.append((f"tbfed.v1.task.{ident.node_id}", payload, headers))
    start = time.monotonic()
    flooder.publish_many(items)
    assert time.monotonic() - start < 20  # ~1 s on an idle machine; generous for a loaded CI box
    def processed():  # the flood alone: A's presence and stats are accepted too, and not counted
        b.store.flush()
        n, c = b.store.query_federation_tasks(1)[1], b.federation.counters()
        return n + c["drops"].get("rate_limited", 0) >= 10_000 and (n, c)

    stored, counters = wait_for(processed, timeout=30, what="10 000 messages processed")
    # Burst of 200 plus 50/s while the flood lasts; everything else dropped as FED_004.
    assert 200 <= stored <= 200 + 50 * (time.monotonic() - start + 1)
    assert counters["drops"]["rate_limited"] == 10_000 - stored
    assert b.status()["state"] == FederationState.CONNECTED.value
    assert (
        f'federation_messages_dropped_total{{code="FED_004",reason="rate_limited"}} {10_000 - stored}.0'
        in _metrics_text(b)
    )


def _metrics_text(agent) -> str:
    from prometheus_client import generate_latest

    return generate_latest(agent.metrics_registry).decode()
