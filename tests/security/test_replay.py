"""Replay attacks by a federation member, against a real seed and real agents (issue 11, items 1-2).

The attacker holds the shared `monitor` credentials, captures signed messages from the wire and
republishes them later. Receivers must drop copies and stale messages before anything else, so
a replay changes nothing and costs the real sender nothing.
"""

from __future__ import annotations

import json
import threading
import time

from monitor_agent.identity import load_identity
from tests.agent.conftest import agent_env, task_event
from tests.plugins.messages import task_publication, wire_ts
from tests.plugins.tools import wait_for


def _online(receiver, node_id: str) -> bool | None:
    """What the receiver's own API says about `node_id` (None: not listed)."""
    peers = receiver.get("/api/federation/peers").json()["peers"]
    return next((p["online"] for p in peers if p["nodeId"] == node_id), None)


def _captured(attacker, event: str) -> list:
    return [c for c in attacker.captured if json.loads(c[1])["event"] == event]


def _received(receiver) -> int:
    return receiver.agent.federation.counters()["received"]


def _replay(receiver, attacker, item) -> None:
    """Republish one captured message and wait until the receiver has processed it."""
    before = _received(receiver)
    attacker.publish(*item)
    wait_for(lambda: _received(receiver) > before, what="the replay reached the receiver")
    receiver.agent.store.flush()


def test_replayed_presence_neither_takes_a_live_node_offline_nor_brings_a_dead_one_back(
    module_seed, agent_factory, raw_nats, tmp_path
):
    url = module_seed.url_for("monitor")
    receiver = agent_factory(agent_env(url, tmp_path / "r"))
    a_id = load_identity(tmp_path / "a").node_id
    attacker = raw_nats(url)
    attacker.capture(f"tbfed.v1.presence.{a_id}")
    a = agent_factory(agent_env(url, tmp_path / "a"))
    wait_for(lambda: _online(receiver, a_id), what="A online at the receiver")
    # A switches broadcasting off and on again: node_offline, then (paced) a newer node_online.
    a.agent.apply_settings({"broadcastTasks": False, "broadcastStats": False})
    wait_for(lambda: _online(receiver, a_id) is False, what="A offline")
    a.agent.apply_settings({"broadcastTasks": True, "broadcastStats": True})
    wait_for(lambda: len(_captured(attacker, "node_online")) == 2, timeout=15, what="A online again")
    wait_for(lambda: _online(receiver, a_id), what="A online again at the receiver")
    # The replayed goodbye is older than what the receiver has already seen from A.
    _replay(receiver, attacker, _captured(attacker, "node_offline")[0])
    assert _online(receiver, a_id) is True
    # A goes away for real; its old node_online, replayed, must not bring it back.
    time.sleep(5.2)  # past the presence rate limit, so only the staleness rule can stop the replay
    a.stop()
    wait_for(lambda: _online(receiver, a_id) is False, what="A offline after stopping")
    _replay(receiver, attacker, _captured(attacker, "node_online")[0])
    assert _online(receiver, a_id) is False
    assert receiver.agent.federation.counters()["drops"].get("stale", 0) == 2


def test_6000_copies_of_an_old_task_do_not_stop_the_senders_next_5_tasks(
    module_seed, agent_factory, raw_nats, tmp_path
):
    url = module_seed.url_for("monitor")
    receiver = agent_factory(agent_env(url, tmp_path / "r", FEDERATION_BROADCAST_TASKS="false"))
    a_id = load_identity(tmp_path / "a").node_id
    attacker = raw_nats(url)
    attacker.capture(f"tbfed.v1.task.{a_id}")
    a = agent_factory(agent_env(url, tmp_path / "a"))
    wait_for(lambda: a.agent.status()["connected"], what="A connected")

    def stored_from_a() -> int:
        rows, _ = receiver.agent.store.query_federation_tasks(1000)
        return sum(1 for r in rows if r.source_node == a_id)

    a.agent.submit_task_event(task_event("completed", "exec-0", chain_id=1, task_type="js", exit_code=0))
    wait_for(lambda: stored_from_a() == 1, what="A's first task stored")
    old = attacker.captured[0]
    attacker.publish_many([old] * 6000)
    # A's next tasks go out while the attacker keeps replaying.
    more = threading.Thread(target=attacker.publish_many, args=([old] * 2000,))
    more.start()
    for i in range(1, 6):
        a.agent.submit_task_event(
            task_event("completed", f"exec-{i}", chain_id=1, task_type="js", exit_code=0)
        )
    more.join(60)
    wait_for(lambda: stored_from_a() == 6, timeout=20, what="all 5 new tasks of A stored")
    drops = lambda: receiver.agent.federation.counters()["drops"]  # noqa: E731
    wait_for(lambda: drops().get("duplicate") == 8000, timeout=20, what="every copy dropped as a copy")
    assert drops().get("rate_limited", 0) == 0


def test_replayed_tasks_after_a_receiver_restart_still_cost_the_sender_nothing(
    module_seed, agent_factory, raw_nats, tmp_path
):
    """More distinct old tasks than the rate burst, replayed to a receiver that restarted (its
    memory of what it received is gone): they are copies of stored rows and cost A nothing."""
    url = module_seed.url_for("monitor")
    r_env = agent_env(url, tmp_path / "r", FEDERATION_BROADCAST_TASKS="false")
    receiver = agent_factory(r_env)
    a_id = load_identity(tmp_path / "a").node_id
    attacker = raw_nats(url)
    attacker.capture(f"tbfed.v1.task.{a_id}")
    a = agent_factory(agent_env(url, tmp_path / "a"))
    wait_for(lambda: a.agent.status()["connected"], what="A connected")
    for i in range(250):
        a.agent.submit_task_event(
            task_event("completed", f"old-{i}", chain_id=1, task_type="js", exit_code=0)
        )
    wait_for(lambda: receiver.agent.store.federation_counts()["tasks"] == 250, timeout=30, what="250 stored")
    receiver.stop()
    receiver = agent_factory(r_env)
    wait_for(lambda: receiver.agent.status()["connected"], what="receiver back")
    attacker.publish_many(list(attacker.captured))
    for i in range(5):
        a.agent.submit_task_event(
            task_event("completed", f"new-{i}", chain_id=1, task_type="js", exit_code=0)
        )
    wait_for(lambda: receiver.agent.store.federation_counts()["tasks"] == 255, timeout=20, what="A's 5 new")
    assert receiver.agent.federation.counters()["drops"].get("rate_limited", 0) == 0


def test_task_events_older_than_the_retention_window_are_dropped(
    module_seed, agent_factory, raw_nats, tmp_path
):
    url = module_seed.url_for("monitor")
    receiver = agent_factory(agent_env(url, tmp_path / "r"))
    wait_for(lambda: receiver.agent.status()["connected"], what="receiver connected")
    peer = load_identity(tmp_path / "peer")
    sent = [
        task_publication(peer, n, event="task_received", blockNumber=1, taskType="js", timestamp=wire_ts(-age))
        for n, age in ((1, 8 * 86_400), (2, 6 * 86_400))
    ]
    raw_nats(url).publish_many(sent)
    wait_for(lambda: receiver.agent.store.federation_counts()["tasks"] == 1, what="the 6-day-old task")
    rows, _ = receiver.agent.store.query_federation_tasks(10)
    assert [r.task_id for r in rows] == ["global-task-000000000002"]
    assert receiver.agent.federation.counters()["drops"] == {"stale": 1}
    # A 6-day-old task is history, not a sign of life: the sender is not shown online.
    assert not _online(receiver, peer.node_id)
