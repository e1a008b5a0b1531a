"""Store rows and agent objects -> the API's JSON shapes (the ones openapi.py documents).

Each function names every field it emits: nothing reaches a response by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import __version__
from ..timestamps import rfc3339

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


_FEDERATION_TASK_KEYS = frozenset(
    ("taskId", "chainId", "blockNumber", "taskType", "status", "executionTimeMs", "receivedAt", "sourceNode")
)
_PEER_KEYS = frozenset(("nodeId", "region", "online", "tasksReported", "lastSeen"))


def federation_task(row: Any) -> dict[str, Any]:
    # Fast path: the store already answers this exact shape (the list endpoint's hot loop).
    if type(row) is dict and row.keys() == _FEDERATION_TASK_KEYS:
        return row
    return {
        "taskId": _get(row, "taskId", "task_id"),
        "chainId": _int(_get(row, "chainId", "chain_id")),
        "blockNumber": _int(_get(row, "blockNumber", "block_number")),
        "taskType": _get(row, "taskType", "task_type"),
        "status": _get(row, "status"),
        "executionTimeMs": _int(_get(row, "executionTimeMs", "execution_time_ms")),
        "receivedAt": ts(_get(row, "receivedAt", "received_at")),
        "sourceNode": _get(row, "sourceNode", "source_node", "node_id"),
    }


def peer(row: Any) -> dict[str, Any]:
    if type(row) is dict and row.keys() == _PEER_KEYS:
        return row
    return {
        "nodeId": _get(row, "nodeId", "node_id"),
        "region": _get(row, "region", default="UNKNOWN") or "UNKNOWN",
        "online": bool(_get(row, "online", default=False)),
        "tasksReported": _int(_get(row, "tasksReported", "tasks_reported")) or 0,
        "lastSeen": ts(_get(row, "lastSeen", "last_seen")),
    }


def local_task(row: Any, include_private: bool) -> dict[str, Any]:
    out = {
        "status": _get(row, "status"),
        "receivedAt": ts(_get(row, "receivedAt", "received_at")),
        "startedAt": ts(_get(row, "startedAt", "started_at")),
        "finishedAt": ts(_get(row, "finishedAt", "finished_at")),
        "chainId": _int(_get(row, "chainId", "chain_id")),
        "blockNumber": _int(_get(row, "blockNumber", "block_number")),
        "taskType": _get(row, "taskType", "task_type"),
        "executionTimeMs": _int(_get(row, "executionTimeMs", "execution_time_ms")),
        "exitCode": _int(_get(row, "exitCode", "exit_code")),
        "steps": _int(_get(row, "steps")),
        "memoryPeak": _int(_get(row, "memoryPeak", "memory_peak")),
        "cached": _bool(_get(row, "cached")),
    }
    if include_private:
        out["executionId"] = _get(row, "executionId", "execution_id")
        private = _get(row, "private", default=None)
        out["private"] = dict(private) if isinstance(private, Mapping) else {}
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


def settings(agent: Any) -> dict[str, Any]:
    cfg = agent.config
    switches = agent.settings() if hasattr(agent, "settings") else cfg.switches()
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


_LOCAL_STATUSES = ("received", "running", "completed", "failed", "unknown")


def local_stats(raw: Mapping[str, Any]) -> dict[str, Any]:
    """This node's counters: all time by status, and the last 24 h."""
    by_status = raw.get("byStatus") or {}
    return {
        "total": _int(raw.get("total")) or 0,
        "byStatus": {s: _int(by_status.get(s)) or 0 for s in _LOCAL_STATUSES},
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


def privacy_blocked(agent: Any) -> int:
    """Outgoing messages the privacy gate blocked (the federation client's counter)."""
    federation = getattr(agent, "federation", None)
    try:
        return int(federation.counters().get("blocked", 0)) if federation is not None else 0
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
