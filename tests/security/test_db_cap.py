"""A member floods the federation to fill every receiver's disk (issue 11, item 3).

With FEDERATION_MAX_DB_MB the database stops growing at the cap: the oldest received federation
rows make room, local task history never does, and local writes keep working (no FED_006).
"""

from __future__ import annotations

import json
import os
import time

from monitor_agent.identity import load_identity
from tests.agent.conftest import agent_env, task_event
from tests.plugins.tools import wait_for

CAP_MB = 1
KEYS, PER_KEY = 40, 200  # within each key's burst: nothing is rate-limited; about 2 MB of rows


def _flood(tmp_path) -> list[tuple[str, bytes, dict]]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for k in range(KEYS):
        ident = load_identity(tmp_path / f"k{k}")
        for n in range(PER_KEY):
            msg = {
                "v": 1,
                "event": "task_completed",
                "nodeId": ident.node_id,
                "taskId": f"global-task-{k * PER_KEY + n:012x}",
                "chainId": k % 3,
                "blockNumber": 18_950_000 + n,
                "taskType": "wasm",
                "status": "completed",
                "executionTimeMs": 245,
                "timestamp": now,
            }
            payload = json.dumps(msg, separators=(",", ":")).encode()
            out.append((f"tbfed.v1.task.{ident.node_id}", payload, ident.headers(payload)))
    return out


def test_the_cap_evicts_federation_rows_never_local_tasks(module_seed, agent_factory, raw_nats, tmp_path):
    url = module_seed.url_for("monitor")
    receiver = agent_factory(agent_env(url, tmp_path / "r", FEDERATION_MAX_DB_MB=str(CAP_MB)))
    agent = receiver.agent
    wait_for(lambda: agent.status()["connected"], what="receiver connected")
    for i in range(20):
        agent.submit_task_event(
            task_event("completed", f"local-{i}", chain_id=1, task_type="js", exit_code=0)
        )
    messages = _flood(tmp_path)
    raw_nats(url).publish_many(messages)
    wait_for(
        lambda: agent.federation.counters()["received"] == len(messages), timeout=60, what="flood received"
    )
    assert agent.store.flush(30)
    # Local history still grows once the cap is reached: federation rows give way.
    blob = {"note": "x" * 2000}
    for i in range(20, 50):
        agent.submit_task_event(task_event("completed", f"local-{i}", private=blob, exit_code=0))
    assert os.path.getsize(agent.config.db_path) <= CAP_MB * 1024 * 1024
    _, local_total = agent.store.list_local_tasks(limit=100)
    assert local_total == 50
    assert all(agent.store.get_local_task(f"local-{i}") is not None for i in range(50))
    fed = agent.store.federation_counts()["tasks"]
    assert 0 < fed < len(messages) and agent.store.evicted >= len(messages) - fed
    # The oldest rows went first: the newest message of the flood is still there, the first is not.
    rows, _ = agent.store.query_federation_tasks(1)
    assert rows[0].task_id == f"global-task-{KEYS * PER_KEY - 1:012x}"
    assert not agent.store.has_federation_task(
        json.loads(messages[0][1])["nodeId"], "global-task-000000000000", "task_completed"
    )
    status = receiver.get("/api/federation/status").json()
    assert status["lastError"] is None or status["lastError"]["code"] != "FED_006"
    # The network statistics forget what was evicted.
    assert agent.store.network_stats()["tasks24h"] == fed
