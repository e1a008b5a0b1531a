"""Me vs network on a synthetic federation: real signed publishers on a real seed, a real agent
that receives (broadcast off), its real API and /metrics.

Peers are raw NATS clients with real identities publishing signed task events with known
distributions; the agent's own tasks go through `submit_task_event`, as a log source's would.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor_agent.config import DB_FILE
from monitor_agent.identity import load_identity
from monitor_agent.protocol import KIND_TASK, subject_for
from monitor_agent.stats_sketch import NETWORK_ACCURACY
from monitor_agent.store import FederationTaskRow, Store, now_ms

from .conftest import agent_env, task_event, wait_for

pytestmark = pytest.mark.slow


def _ts() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Federation:
    """Synthetic peers: each a real identity publishing signed events through one NATS client."""

    def __init__(self, raw, tmp_path, n: int):
        self.raw = raw
        self.peers = [load_identity(tmp_path / f"peer{i}") for i in range(n)]
        self.sent = 0

    def publish(self, events: list[tuple[int, int, bool, int | None]], chain_id: int = 1) -> None:
        """events: (peer index, sequence, failed, executionTimeMs)."""
        items = []
        for peer_i, seq, failed, exec_ms in events:
            peer = self.peers[peer_i]
            msg = {
                "v": 1,
                "event": "task_failed" if failed else "task_completed",
                "nodeId": peer.node_id,
                "taskId": f"global-task-{(peer_i << 32 | seq):012x}",
                "chainId": chain_id,
                "blockNumber": 1000 + seq,
                "taskType": "wasm",
                "status": "failed" if failed else "completed",
                "executionTimeMs": exec_ms,
                "timestamp": _ts(),
            }
            payload = json.dumps(msg, separators=(",", ":")).encode()
            items.append((subject_for(KIND_TASK, peer.node_id), payload, peer.headers(payload)))
        self.raw.publish_many(items)
        self.sent += len(items)


def _own_tasks(agent, n: int, *, exec_ms, failed=lambda i: False, chain_id: int = 1, prefix: str = "own"):
    for i in range(n):
        eid = f"{prefix}-{i}"
        agent.submit_task_event(task_event("received", eid, chain_id=chain_id, task_type="wasm"))
        if failed(i):
            agent.submit_task_event(task_event("completed", eid, execution_time_ms=exec_ms(i), exit_code=1))
        else:
            agent.submit_task_event(task_event("completed", eid, execution_time_ms=exec_ms(i), exit_code=0))


def _receiver(agent_factory, module_seed, tmp_path, name: str):
    """An agent that receives but broadcasts nothing (it still compares itself)."""
    env = agent_env(
        module_seed.url_for("monitor"),
        tmp_path / name,
        FEDERATION_BROADCAST_TASKS="false",
        FEDERATION_BROADCAST_STATS="false",
    )
    running = agent_factory(env)
    wait_for(lambda: running.agent.status()["connected"], what="agent connected")
    wait_for(lambda: not running.agent.compare.seeding, what="compare seeded")
    return running


def _compare(running, **params) -> dict:
    r = running.get("/api/compare", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _fresh(running, chain_id: int, window: str = "1h") -> dict:
    running.agent.compare._cache.clear()
    body = _compare(running, chainId=chain_id, window=window)
    (chain,) = body["chains"]
    return chain


def _exact(values: list[float], q: float) -> tuple[float, float]:
    s = sorted(values)
    r = q * (len(s) - 1)
    return s[math.floor(r)], s[math.ceil(r)]


def test_network_quantiles_match_exact_ones_and_a_slower_node_hears_your_node(
    agent_factory, module_seed, raw_nats, tmp_path
):
    me = _receiver(agent_factory, module_seed, tmp_path, "me")
    fed = Federation(raw_nats(module_seed.url_for("monitor")), tmp_path, 6)
    rng = random.Random(17)
    # Six peers, 60 completed tasks each, lognormal execution times around 800 ms (per-node
    # medians 600-1100 ms), 2 failures each: a healthy network.
    events, values = [], []
    for p in range(6):
        median = 600 + 100 * p
        for seq in range(62):
            failed = seq < 2
            exec_ms = None if failed else max(1, round(median * rng.lognormvariate(0, 0.35)))
            events.append((p, seq, failed, exec_ms))
            if exec_ms is not None:
                values.append(exec_ms)
    fed.publish(events)
    wait_for(lambda: me.agent.compare.events_added >= len(events), what="all peer events counted")
    # This node: 40 tasks, three times slower than the network, no failures.
    _own_tasks(me.agent, 40, exec_ms=lambda i: 2400 + 10 * i)

    chain = _fresh(me, 1)
    net = chain["network"]
    assert net["nodes"] == 6 and net["events"] == 372 and net["failed"] == 12
    assert net["failureRate"] == pytest.approx(12 / 372, abs=1e-4)
    for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        lo, hi = _exact(values, q)
        got = net["executionMs"][name]
        # DDSketch's guarantee: within the stated relative accuracy of the exact quantile
        # (rounded to 0.1 ms in the API).
        assert lo * (1 - NETWORK_ACCURACY) - 0.05 <= got <= hi * (1 + NETWORK_ACCURACY) + 0.05, (
            name,
            got,
            lo,
        )
    assert chain["own"]["events"] == 40 and chain["own"]["failed"] == 0
    assert chain["own"]["executionMs"]["p50"] == pytest.approx(2590, rel=0.011)
    assert chain["rank"] == {
        "metric": "p50ExecutionMs",
        "slowerThanPct": 100,
        "nodes": 6,
        "text": "Your p50 execution time on chain 1 is slower than 100 % of 6 nodes.",
    }
    v = chain["verdict"]
    assert v["verdict"] == "your_node" and v["rule"] == "own_slow", v
    assert v["numbers"]["ownAboveNetworkP50"] == 1.0 and v["numbers"]["slowZ"] > 2.326
    assert "median execution time on chain 1" in v["text"]
    assert len(chain["series"]) in (7, 8)

    # The same figures reach Prometheus, per chain only.
    metrics = me.get("/metrics").text
    assert 'monitor_agent_compare_verdict{chain="1"} 2.0' in metrics
    assert 'monitor_agent_compare_other_nodes{chain="1"} 6.0' in metrics
    ratio = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('monitor_agent_compare_execution_p50_ratio{chain="1"}')
    )
    assert ratio == pytest.approx(chain["own"]["executionMs"]["p50"] / net["executionMs"]["p50"], rel=1e-3)

    # A task type nobody ran: nothing to compare, said with the counts.
    body = _compare(me, chainId=1, taskType="js")
    assert body["chains"][0]["verdict"]["verdict"] == "not_enough_data"
    assert "0 other nodes (need 3)" in body["chains"][0]["verdict"]["text"]


def test_a_network_wide_failure_spike_is_the_network(agent_factory, module_seed, raw_nats, tmp_path):
    fed = Federation(raw_nats(module_seed.url_for("monitor")), tmp_path, 5)
    # Yesterday (stored before the agent starts, seeded from SQLite at start-up): 2 % failures.
    store = Store(tmp_path / "net" / DB_FILE)
    hour = 3_600_000
    base = now_ms() - 3 * hour
    for i in range(500):
        peer = fed.peers[i % 5]
        store.enqueue_federation_task(
            FederationTaskRow(
                peer.node_id,
                f"global-task-{0xB000000 + i:012x}",
                "task_failed" if i % 50 == 0 else "task_completed",
                7,
                None,
                "wasm",
                "failed" if i % 50 == 0 else "completed",
                None if i % 50 == 0 else 500,
                _ts(),
                base - (i % 20) * hour,
            )
        )
    store.flush()
    store.close()
    me = _receiver(agent_factory, module_seed, tmp_path, "net")
    # Now: every node fails about 40 % of its tasks, this one included.
    events = [(p, seq, seq % 5 < 2, None if seq % 5 < 2 else 520) for p in range(5) for seq in range(40)]
    fed.publish(events, chain_id=7)
    wait_for(
        lambda: me.agent.compare.events_added >= 500 + len(events),
        what="peer events counted",
    )
    _own_tasks(me.agent, 35, exec_ms=lambda i: 510, failed=lambda i: i % 5 < 2, chain_id=7)

    chain = _fresh(me, 7)
    v = chain["verdict"]
    assert v["verdict"] == "the_network" and v["rule"] == "network_failure_spike", v
    n = v["numbers"]
    assert n["baselineEvents"] == 500 and n["baselineFailed"] == 10
    assert n["networkEvents"] == 200 and n["networkFailed"] == 80
    assert n["nodesUp"] == 5 and n["nodesCounted"] == 5
    assert "40.0 %" in v["text"] and "2.0 %" in v["text"]
    assert 'monitor_agent_compare_verdict{chain="7"} 3.0' in me.get("/metrics").text


def test_too_few_nodes_is_not_enough_data_with_the_counts(agent_factory, module_seed, raw_nats, tmp_path):
    me = _receiver(agent_factory, module_seed, tmp_path, "few")
    fed = Federation(raw_nats(module_seed.url_for("monitor")), tmp_path, 2)
    events = [(p, seq, False, 300 + seq) for p in range(2) for seq in range(50)]
    fed.publish(events, chain_id=5)
    wait_for(lambda: me.agent.compare.events_added >= len(events), what="peer events counted")
    _own_tasks(me.agent, 12, exec_ms=lambda i: 5000, chain_id=5)

    chain = _fresh(me, 5)
    v = chain["verdict"]
    assert v["verdict"] == "not_enough_data" and v["rule"] == "floor"
    assert v["text"] == ("Not enough data on chain 5: 2 other nodes (need 3), 12 own events (need 30).")
    assert v["numbers"] == {"otherNodes": 2, "ownEvents": 12, "networkEvents": 100}
    # The figures are still shown, only the verdict is withheld.
    assert chain["network"]["events"] == 100 and chain["own"]["executionMs"]["p50"] == pytest.approx(
        5000, rel=0.01
    )


def test_24h_window_and_start_up_seeding_agree_with_the_live_figures(
    agent_factory, module_seed, raw_nats, tmp_path
):
    """Received rows survive a restart: the comparison rebuilt from SQLite equals the live one."""
    fed = Federation(raw_nats(module_seed.url_for("monitor")), tmp_path, 4)
    me = _receiver(agent_factory, module_seed, tmp_path, "restart")
    events = [
        (p, seq, seq % 10 == 0, None if seq % 10 == 0 else 100 * (p + 1) + seq)
        for p in range(4)
        for seq in range(40)
    ]
    fed.publish(events, chain_id=9)
    wait_for(lambda: me.agent.compare.events_added >= len(events), what="peer events counted")
    _own_tasks(me.agent, 30, exec_ms=lambda i: 250, chain_id=9)
    live = _fresh(me, 9, "24h")
    data_dir = me.config.data_dir
    me.stop()
    again = _receiver(agent_factory, module_seed, tmp_path, "restart")
    assert again.config.data_dir == data_dir
    seeded = _fresh(again, 9, "24h")
    for key in ("own", "network", "rank"):
        assert seeded[key] == live[key], key
    assert seeded["verdict"]["verdict"] == live["verdict"]["verdict"]
    assert live["network"]["events"] == 160 and live["own"]["events"] == 30
    assert len(live["series"]) in (25, 26)
    assert (
        timedelta(hours=24)
        <= datetime.now(UTC)
        - datetime.fromisoformat(_compare(again, window="24h")["windowStart"].replace("Z", "+00:00"))
        <= timedelta(hours=25, seconds=5)
    )
