"""Federation wire messages as a peer publishes them (PROTOCOL.md §2), for tests that play a peer.

    task_message(node_id, n, event="task_completed", **fields) -> dict   a valid task event, now
    wire_ts(delta_s=0) -> str                                            a wire timestamp, now + delta
    signed(identity, msg) -> (payload, headers)                          compact JSON, signed by identity
    task_publication(identity, n, node_id=None, **fields) -> (subject, payload, headers)
        what `RawNats.publish_many` takes: a task of `node_id` (default: the identity's own id)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor_agent.protocol import EVENT_STATUS, subject_for


def wire_ts(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_message(node_id: str, n: int, event: str = "task_completed", **fields) -> dict:
    status = EVENT_STATUS[event]
    msg = {
        "v": 1,
        "event": event,
        "nodeId": node_id,
        "taskId": f"global-task-{n:012x}",
        "chainId": 1,
        "blockNumber": 18950234,
        "taskType": "wasm",
        "status": status,
        "executionTimeMs": None if status == "received" else 245,
        "timestamp": wire_ts(),
    }
    msg.update(fields)
    return msg


def signed(identity, msg: dict | bytes) -> tuple[bytes, dict]:
    payload = msg if isinstance(msg, bytes) else json.dumps(msg, separators=(",", ":")).encode()
    return payload, identity.headers(payload)


def task_publication(identity, n: int, node_id: str | None = None, **fields) -> tuple[str, bytes, dict]:
    node_id = node_id or identity.node_id
    payload, headers = signed(identity, task_message(node_id, n, **fields))
    return subject_for("task", node_id), payload, headers
