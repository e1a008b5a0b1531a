"""One key, many nodeIds (issue 11, item 3): a member signs with one key under 30 made-up nodeIds.

A nodeId is bound to the first key it is seen with, and a key to the first nodeId it speaks for;
the binding lives in the store beside the pin, so a restart does not reopen it. (Many keys, each
under its own nodeId, cannot be told apart from many members: docs/privacy.md, "Honest limits".)
"""

from __future__ import annotations

from monitor_agent.identity import load_identity
from tests.agent.conftest import agent_env
from tests.plugins.messages import task_publication
from tests.plugins.tools import wait_for


def _task(node_id: str, n: int, key_holder) -> tuple[str, bytes, dict]:
    return task_publication(key_holder, n, node_id, blockNumber=100 + n, taskType="js", executionTimeMs=10)


def test_one_key_under_30_node_ids_is_stored_under_at_most_one(
    module_seed, agent_factory, raw_nats, tmp_path
):
    url = module_seed.url_for("monitor")
    env = agent_env(url, tmp_path / "r")
    receiver = agent_factory(env)
    wait_for(lambda: receiver.agent.status()["connected"], what="receiver connected")
    sybil = load_identity(tmp_path / "sybil")  # one key
    names = [f"sybil-{i:02d}" for i in range(30)]
    attacker = raw_nats(url)
    attacker.publish_many([_task(name, i, sybil) for i, name in enumerate(names)])
    wait_for(lambda: receiver.agent.federation.counters()["received"] == 30, what="30 received")
    receiver.agent.store.flush()
    rows, total = receiver.agent.store.query_federation_tasks(100)
    assert total <= 1 and len({r.source_node for r in rows}) <= 1
    peers = receiver.get("/api/federation/peers").json()["peers"]
    assert len([p for p in peers if p["nodeId"].startswith("sybil-")]) <= 1
    assert receiver.agent.store.network_stats()["activeNodes"] <= 1
    assert receiver.agent.federation.counters()["drops"] == {"key_reused": 29}
    metrics = receiver.get("/metrics").text
    assert 'reason="key_reused"' in metrics and 'code="FED_003"' in metrics
    # The binding is stored: after a restart the key still speaks for its first nodeId only.
    receiver.stop()
    receiver = agent_factory(env)
    wait_for(lambda: receiver.agent.status()["connected"], what="receiver back")
    attacker.publish_many([_task(name, 100 + i, sybil) for i, name in enumerate(names)])
    wait_for(lambda: receiver.agent.federation.counters()["received"] == 30, what="30 received again")
    receiver.agent.store.flush()
    rows, total = receiver.agent.store.query_federation_tasks(100)
    assert total <= 2 and len({r.source_node for r in rows}) <= 1
    assert receiver.agent.federation.counters()["drops"] == {"key_reused": 29}
