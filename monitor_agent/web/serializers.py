"""Store rows and agent objects -> the API's JSON shapes (the ones openapi.py documents).

The store answers rows and model objects (LocalTask, FederationTaskRow, PeerState); every
response and WebSocket event shape is made here.

Each function names every field it emits: nothing reaches a response by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..model import TASK_STATUSES
from ..timestamps import rfc3339

if TYPE_CHECKING:
    from ..interfaces import AgentLike
    from ..model import LocalTask
    from ..store import FederationTaskRow, PeerState

# What the Privacy tab promises is never sent (PROTOCOL.md §2, "Never in a message").
NEVER_SHARED = (
    "Wallet address or any 0x address",
    "Private keys",
    "This node's execution ids, TrueBit task ids and task hashes",
    "Block hashes",
    "Task inputs and outputs",
    "Log text",
    "Invoice amounts",
    "IP addresses and host names",
)

SHARED = (
    "Chain id (for example 1 for Ethereum)",
    "Block number (left out in strict privacy mode)",
    "Task type (for example wasm)",
    "A stand-in task id (global-task-…) made with a secret kept on this machine: it cannot be traced"
    " back to the real task",
    "Task status: received, completed or failed",
    "Execution time in milliseconds",
    "Timestamp, to the second",
    "A random-looking node id derived from a key made on this machine (not your wallet)",
    "With every message: that key's public half (header Tbf-Key) and the message's signature (Tbf-Sig)",
    "Your region, only if you set FEDERATION_REGION",
    "Counts: tasks in the last 24 h, completed, failed, active, average execution time",
)


def _get(row: Any, *names: str, default: Any = None) -> Any:
    """The first present field among `names` (API camelCase first, then the store's snake_case)."""
    if isinstance(row, Mapping):
        for n in names:
            if n in row:
                return row[n]
        return default
    for n in names:
        if hasattr(row, n):
            return getattr(row, n)
    return default


def ts(value: Any) -> str | None:
    """RFC 3339 UTC with Z, whole seconds; strings pass through, epoch numbers are converted."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return rfc3339(value)
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


# The global feed's task (PROTOCOL.md §6) as SQL over the store's federation_tasks columns:
# SQLite builds the page's JSON in one step (Store.query_federation_tasks_json, the hot path).
# `federation_task` below is the same shape from a row object; a test holds the two equal.
FEDERATION_TASK_SQL = (
    ("taskId", "task_id"),
    ("chainId", "chain_id"),
    ("blockNumber", "block_number"),
    ("taskType", "task_type"),
    ("status", "status"),
    ("executionTimeMs", "execution_time_ms"),
    ("receivedAt", "strftime('%Y-%m-%dT%H:%M:%SZ', received_at / 1000, 'unixepoch')"),
    ("sourceNode", "source_node"),
)


def federation_task(row: FederationTaskRow) -> dict[str, Any]:
    """A received task as the global feed shows it (PROTOCOL.md §6)."""
    return {
        "taskId": row.task_id,
        "chainId": row.chain_id,
        "blockNumber": row.block_number,
        "taskType": row.task_type,
        "status": row.status,
        "executionTimeMs": row.execution_time_ms,
        "receivedAt": rfc3339(row.received_at / 1000),
        "sourceNode": row.source_node,
    }


def federation_task_event(row: FederationTaskRow) -> dict[str, Any]:
    """The WebSocket `federation_task` event's data: the feed's task without receivedAt (the
    seed documentation's payload)."""
    out = federation_task(row)
    del out["receivedAt"]
    return out


def peer(p: PeerState, now: int) -> dict[str, Any]:
    return {
        "nodeId": p.node_id,
        "region": p.region or "UNKNOWN",
        "online": p.online(now),
        "tasksReported": p.tasks_reported,
        "lastSeen": rfc3339(p.last_seen / 1000),
    }


def _dt(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def local_task(t: LocalTask, include_private: bool) -> dict[str, Any]:
    """One of this node's tasks (execution id and private fields only with the token)."""
    out: dict[str, Any] = {
        "status": t.status,
        "receivedAt": _dt(t.received_at),
        "startedAt": _dt(t.started_at),
        "finishedAt": _dt(t.finished_at),
        "chainId": t.chain_id,
        "blockNumber": t.block_number,
        "taskType": t.task_type,
        "executionTimeMs": t.execution_time_ms,
        "exitCode": t.exit_code,
        "steps": t.steps,
        "memoryPeak": t.memory_peak,
        "cached": t.cached,
    }
    if include_private:
        out["executionId"] = t.execution_id
        out["private"] = dict(t.private)
    return out


_STATUS_STATS = ("connectedPeers", "tasks24h", "activeNodes", "tasksCompleted24h", "avgExecutionMs")


def status(raw: Mapping[str, Any]) -> dict[str, Any]:
    stats = raw.get("stats") or {}
    last = raw.get("lastError")
    return {
        "enabled": bool(raw.get("enabled")),
        "connected": bool(raw.get("connected")),
        "state": raw.get("state") or "DISABLED",
        "nodeId": raw.get("nodeId"),
        "lastError": error_event(last) if last else None,
        "catchUp": catch_up(raw.get("catchUp")),
        "stats": {
            k: (_int(stats.get(k)) if k == "avgExecutionMs" else _int(stats.get(k)) or 0)
            for k in _STATUS_STATS
        },
    }


_CATCH_UP_COUNTS = ("read", "accepted", "dropped", "pending", "maxAgeS")


def catch_up(raw: Any) -> dict[str, Any]:
    """The status API's `catchUp` (PROTOCOL.md §6): history catch-up progress, typed."""
    raw = raw if isinstance(raw, Mapping) else {}
    offered = raw.get("historyOffered")
    out: dict[str, Any] = {
        "catchingUp": bool(raw.get("catchingUp")),
        "historyOffered": offered if isinstance(offered, bool) else None,
        "code": str(raw["code"]) if raw.get("code") else None,
        "since": ts(raw.get("since")) if raw.get("since") else None,
        "lastCompletedAt": ts(raw.get("lastCompletedAt")) if raw.get("lastCompletedAt") else None,
    }
    for k in _CATCH_UP_COUNTS:
        out[k] = _int(raw.get(k)) if k == "maxAgeS" else _int(raw.get(k)) or 0
    return out


def error_event(raw: Any) -> dict[str, Any]:
    return {
        "code": str(_get(raw, "code", default="")),
        "message": str(_get(raw, "message", default="")),
        "at": ts(_get(raw, "at")),
    }


def settings(agent: AgentLike) -> dict[str, Any]:
    cfg = agent.config
    switches = agent.settings()
    try:
        node_id = agent.status().get("nodeId")
    except Exception:  # status must never break the settings page
        node_id = cfg.node_id
    return {
        **{k: bool(switches[k]) for k in ("enabled", "broadcastTasks", "broadcastStats", "receiveEnabled")},
        "seedUrl": cfg.seed_url_display,
        "nodeId": node_id,
        "region": cfg.region,
        "privacy": cfg.privacy,
        "version": __version__,
    }


def local_stats(raw: Mapping[str, Any]) -> dict[str, Any]:
    """This node's counters: all time by status, and the last 24 h."""
    by_status = raw.get("byStatus") or {}
    return {
        "total": _int(raw.get("total")) or 0,
        "byStatus": {s: _int(by_status.get(s)) or 0 for s in TASK_STATUSES},
        "activeTasks": _int(raw.get("activeTasks")) or 0,
        "tasks24h": _int(raw.get("tasks24h")) or 0,
        "tasksCompleted24h": _int(raw.get("tasksCompleted24h")) or 0,
        "tasksFailed24h": _int(raw.get("tasksFailed24h")) or 0,
        "avgExecutionMs": _int(raw.get("avgExecutionMs")),
    }


def privacy(outbox: list[Any], blocked: int) -> dict[str, Any]:
    return {
        "outbox": [outgoing(m) for m in outbox],
        "blocked": _int(blocked) or 0,
        "neverShared": list(NEVER_SHARED),
        "shared": list(SHARED),
    }


def privacy_blocked(agent: AgentLike) -> int:
    """Outgoing messages the privacy gate blocked (the federation client's counter)."""
    try:
        return int(agent.federation.counters().get("blocked", 0))
    except Exception:  # a counter must never break the page
        return 0


def outgoing(item: Any) -> dict[str, Any]:
    """One outbox entry: subject, the exact payload text and headers as sent, when, whether blocked."""
    payload = _get(item, "payload", "data", default=item)
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload).decode("utf-8", "replace")
    elif not isinstance(payload, str):
        payload = json.dumps(payload, separators=(",", ":"))
    headers = _get(item, "headers", default=None)
    return {
        "subject": _get(item, "subject"),
        "payload": payload,
        # The NATS headers go out with the payload (Tbf-Key, Tbf-Sig): part of what is sent.
        "headers": {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {},
        "at": ts(_get(item, "at", "sentAt", "sent_at")),
        "blocked": bool(_get(item, "blocked", default=False)),
        "reason": _get(item, "reason"),
    }
