"""The Agent runtime: status, live settings, sources, shutdown, database errors."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from monitor_agent.config import read_settings
from monitor_agent.errors import StoreError
from monitor_agent.identity import load_identity
from tests.plugins.messages import task_publication

from .conftest import agent_env, task_event, wait_for

STATUS_KEYS = {"enabled", "connected", "state", "nodeId", "lastError", "catchUp", "stats"}
STATS_KEYS = {"connectedPeers", "tasks24h", "activeNodes", "tasksCompleted24h", "avgExecutionMs"}


class CountingSource:
    """A real source shape: a thread that submits events until stopped."""

    name = "counting"

    def __init__(self, agent, n: int):
        self.agent, self.n = agent, n
        self.started = self.stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = True
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        for i in range(self.n):
            self.agent.submit_task_event(task_event("received", f"src-{i}", chain_id=1, task_type="js"))

    def stop(self) -> None:
        self.stopped = True
        if self._thread:
            self._thread.join(5)


def test_disabled_by_default_and_local_monitoring_works_alone(make_agent):
    agent = make_agent({})
    status = agent.status()
    assert set(status) == STATUS_KEYS and set(status["stats"]) == STATS_KEYS
    assert (status["enabled"], status["connected"], status["state"]) == (False, False, "DISABLED")
    source = CountingSource(agent, 20)
    agent.register_source(source)  # the agent is running: started at once
    wait_for(lambda: agent.store.list_local_tasks(1, 0, None)[1] == 20, what="20 local tasks")
    assert agent.outbox_snapshot() == []
    agent.stop()
    assert source.started and source.stopped


def test_settings_apply_live_and_persist(module_seed, make_agent, raw_nats, tmp_path):
    spy = raw_nats(module_seed.url_for("monitor"))
    spy.capture()
    agent = make_agent(agent_env(module_seed.url_for("monitor"), tmp_path / "a", ENABLE_FEDERATION="false"))
    settings, restart = agent.apply_settings({"enabled": True})
    assert restart is False and settings["enabled"] is True
    wait_for(lambda: agent.status()["connected"], what="connected after enabling live")
    assert read_settings(tmp_path / "a") == {"enabled": True}

    agent.apply_settings({"broadcastTasks": False})
    agent.submit_task_event(task_event("received", "quiet-1", chain_id=1, task_type="js"))
    agent.apply_settings({"broadcastTasks": True})
    agent.submit_task_event(task_event("received", "loud-1", chain_id=1, task_type="js"))
    wait_for(lambda: any(b".task." in s.encode() for s, _, _ in spy.captured), what="a task on the wire")
    tasks = [json.loads(d) for s, d, _ in spy.captured if ".task." in s]
    assert [t["taskId"] for t in tasks] == [agent.identity.task_id("loud-1")]

    # Outbox: exactly what was sent, signed (listed once the seed's PONG confirms it, which may
    # come a moment after the spy already holds the message).
    sent = wait_for(
        lambda: [m for m in agent.outbox_snapshot() if ".task." in m["subject"]], what="the task in the outbox"
    )
    assert json.loads(sent[0]["payload"]) == tasks[0] and set(sent[0]["headers"]) == {"Tbf-Key", "Tbf-Sig"}

    agent.apply_settings({"enabled": False})
    assert agent.status()["state"] == "DISABLED"
    offline = wait_for(
        lambda: [json.loads(d) for s, d, _ in spy.captured if ".presence." in s and b"node_offline" in d],
        what="node_offline when switched off",
    )
    assert offline[0]["nodeId"] == agent.identity.node_id
    with pytest.raises(ValueError, match="unknown settings"):
        agent.apply_settings({"nope": True})
    with pytest.raises(ValueError, match="true or false"):
        agent.apply_settings({"enabled": "yes"})


def test_receive_switch_unsubscribes_live(module_seed, make_agent, raw_nats, tmp_path):
    agent = make_agent(agent_env(module_seed.url_for("monitor"), tmp_path / "r"))
    wait_for(lambda: agent.status()["connected"], what="connected")
    pub = raw_nats(module_seed.url_for("monitor"))
    peer = load_identity(tmp_path / "peer")

    def send(n: int) -> None:  # stamped now: receivers drop stale copies
        pub.publish(*task_publication(peer, n, event="task_received", blockNumber=1, taskType="js"))

    send(1)
    wait_for(lambda: agent.store.query_federation_tasks(10)[1] == 1, what="received while on")
    agent.apply_settings({"receiveEnabled": False})  # returns once the seed has dropped the subscription
    received = agent.federation.counters()["received"]
    send(2)
    time.sleep(0.3)
    agent.store.flush()
    assert agent.store.query_federation_tasks(10)[1] == 1
    assert agent.federation.counters()["received"] == received  # unsubscribed: nothing even arrives
    agent.apply_settings({"receiveEnabled": True})  # returns once the seed holds the subscription
    send(3)
    wait_for(lambda: agent.store.query_federation_tasks(10)[1] == 2, what="received again")
    assert agent.clear_federation_data() == {"tasks": 2, "peers": 1}


def test_database_full_is_fed_006_in_status_and_the_agent_carries_on(make_agent, tmp_path):
    agent = make_agent({"DATA_DIR": str(tmp_path / "d")})
    agent.submit_task_event(task_event("received", "kept", chain_id=1, task_type="js"))
    pages = sqlite3.connect(agent.config.db_path).execute("PRAGMA page_count").fetchone()[0]
    agent.store.set_max_pages(pages)
    sub = agent.bus.subscribe()
    with pytest.raises(StoreError) as err:
        for i in range(300):
            agent.submit_task_event(task_event("received", f"x{i}", private={"blob": "y" * 4000}))
    assert err.value.code == "FED_006"
    assert agent.status()["lastError"]["code"] == "FED_006"
    assert any(
        e["type"] == "federation_error" and e["data"]["code"] == "FED_006"
        for e in iter(lambda: sub.get(0), None)
    )
    agent.store.set_max_pages(1_000_000)
    agent.submit_task_event(task_event("received", "after", chain_id=1, task_type="js"))
    assert agent.status()["lastError"] is None
    assert agent.store.get_local_task("kept") is not None
