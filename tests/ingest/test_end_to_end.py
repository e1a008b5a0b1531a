"""End to end: a line the node writes reaches a peer agent's global feed, anonymized, and the
wallet in that line appears nowhere in the seed's traffic. Real nats-server, real agents."""

from __future__ import annotations

import json
import uuid

import pytest

from monitor_agent.sources.files import FileSource
from tests.agent.conftest import RawNats

from .conftest import wait_for
from .nodelog import WALLET, task_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def fed_env(seed) -> dict[str, str]:
    return {"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url_for("monitor"),
            "FEDERATION_RECONNECT_TIMEOUT": "500"}  # fmt: skip


def test_node_line_reaches_a_peer_anonymized(seed, agent_factory, tmp_path):
    spy = RawNats(seed.url_for("monitor"))
    try:
        spy.capture("tbfed.v1.>")
        node = agent_factory(fed_env(seed))
        peer = agent_factory(fed_env(seed))
        for a in (node, peer):
            wait_for(
                lambda a=a: a.get("/api/federation/status").json()["connected"], what="federation connected"
            )
        logs = tmp_path / "node-logs"
        logs.mkdir()
        current = logs / "debug-2024-01-15.log"
        current.write_text("")
        node.agent.register_source(FileSource(node.agent, logs, poll_interval=0.05, idle_flush=0.2))

        exec_id = str(uuid.uuid4())
        text = task_text(exec_id, chain="43113", block=28_123_456, elapsed_ms=321)
        with open(current, "a") as f:
            f.write(text)
        node_id = node.get("/api/federation/status").json()["nodeId"]

        def arrived():
            tasks = peer.get("/api/federation/tasks/global?limit=10").json()["tasks"]
            return [t for t in tasks if t["sourceNode"] == node_id and t["status"] == "completed"]

        (task,) = wait_for(arrived, what="the task on the peer")
        assert (task["chainId"], task["blockNumber"], task["taskType"], task["executionTimeMs"]) == (
            43113, 28_123_456, "js", 321)  # fmt: skip
        assert task["taskId"].startswith("global-task-") and exec_id not in json.dumps(task)

        # Nothing identifying in anything the seed carried: payloads and headers.
        captured = list(spy.captured)
        assert any(json.loads(data).get("event") == "task_completed" for _, data, _ in captured)
        traffic = "".join(
            s + data.decode("utf-8", "replace") + json.dumps(h or {}) for s, data, h in captured
        )
        task_id = json.loads(text.split("task_created: ", 1)[1].split("\n", 1)[0])["taskId"]
        for secret in (WALLET, WALLET[2:], exec_id, task_id, "ab" * 32, "secret"):
            assert secret.lower() not in traffic.lower()
    finally:
        spy.close()
