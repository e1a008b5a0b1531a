"""Build outgoing federation messages from an allow-list of fields (pure, no I/O).

Each message is built field by field from named public attributes of a local record; nothing
is ever copied wholesale and then pruned, so a new private field can never slip out.
`LocalTask.private`, `execution_id` (except through the salted HMAC taskId), exit codes,
steps, memory and cache facts are never read.

Privacy levels (docs/privacy-levels.md):
  standard  chainId, blockNumber, taskType, status, executionTimeMs (ms), timestamp (s)
  strict    blockNumber null, timestamp floored to 5 minutes, executionTimeMs floored to
            a coarse step (STRICT_EXEC_STEPS_MS)
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .model import LocalTask
from .protocol import EVENT_STATUS, MAX_EXECUTION_TIME_MS, PROTOCOL_VERSION, TASK_TYPE_RE
from .timestamps import rfc3339

STANDARD = "standard"
STRICT = "strict"
STRICT_TIME_STEP_S = 300
# Floors for executionTimeMs under strict privacy: coarse enough not to fingerprint a task.
STRICT_EXEC_STEPS_MS = (0, 100, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 3_600_000)

# Local status -> task event (the protocol's event -> status table, reversed); "running" and
# "unknown" are not broadcast.
STATUS_EVENT = {status: event for event, status in EVENT_STATUS.items()}
UNKNOWN_TASK_TYPE = "unknown"




def coarse_time(at: datetime, privacy: str) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if privacy == STRICT:
        epoch = int(at.timestamp())
        at = datetime.fromtimestamp(epoch - epoch % STRICT_TIME_STEP_S, UTC)
    return rfc3339(at)


def coarse_execution_ms(value: int | None, privacy: str) -> int | None:
    if value is None:
        return None
    value = max(0, min(int(value), MAX_EXECUTION_TIME_MS))
    if privacy == STRICT:
        return STRICT_EXEC_STEPS_MS[bisect.bisect_right(STRICT_EXEC_STEPS_MS, value) - 1]
    return value


def public_task_type(value: str | None) -> str:
    """The task type if it is a short plain word (js, rs, api, wasm), else "unknown"."""
    if value is None:
        return UNKNOWN_TASK_TYPE
    low = value.strip().lower()
    return low if TASK_TYPE_RE.match(low) and len(low) <= 16 else UNKNOWN_TASK_TYPE


def task_message(
    task: LocalTask,
    *,
    node_id: str,
    task_id: Callable[[str], str],
    privacy: str = STANDARD,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """The task event for `task`'s current status, or None if that status is not broadcast."""
    event = STATUS_EVENT.get(task.status)
    if event is None:
        return None
    when = {"received": task.received_at, "completed": task.finished_at, "failed": task.finished_at}[
        task.status
    ]
    when = when or task.started_at or task.received_at or now or datetime.now(UTC)
    chain_id = task.chain_id if isinstance(task.chain_id, int) and task.chain_id >= 0 else 0
    block = task.block_number if isinstance(task.block_number, int) and task.block_number >= 0 else None
    exec_ms = task.execution_time_ms if task.status != "received" else None
    return {
        "v": PROTOCOL_VERSION,
        "event": event,
        "nodeId": node_id,
        "taskId": task_id(task.execution_id),
        "chainId": chain_id,
        "blockNumber": None if privacy == STRICT else block,
        "taskType": public_task_type(task.task_type),
        "status": task.status,
        "executionTimeMs": coarse_execution_ms(exec_ms, privacy),
        "timestamp": coarse_time(when, privacy),
    }


def stats_message(
    stats: dict[str, Any], *, node_id: str, privacy: str = STANDARD, now: datetime | None = None
) -> dict[str, Any]:
    """The node_stats message from `Store.local_stats()` (only the five counters)."""
    avg = stats.get("avgExecutionMs")
    return {
        "v": PROTOCOL_VERSION,
        "event": "node_stats",
        "nodeId": node_id,
        "timestamp": coarse_time(now or datetime.now(UTC), privacy),
        "tasks24h": int(stats.get("tasks24h") or 0),
        "tasksCompleted24h": int(stats.get("tasksCompleted24h") or 0),
        "tasksFailed24h": int(stats.get("tasksFailed24h") or 0),
        "activeTasks": int(stats.get("activeTasks") or 0),
        "avgExecutionMs": coarse_execution_ms(avg, privacy) if avg is not None else None,
    }


def presence_message(
    event: str,
    *,
    node_id: str,
    region: str,
    version: str,
    tasks_reported: int,
    privacy: str = STANDARD,
    now: datetime | None = None,
) -> dict[str, Any]:
    # Presence timestamps are never floored: receivers judge liveness by them.
    return {
        "v": PROTOCOL_VERSION,
        "event": event,
        "nodeId": node_id,
        "timestamp": rfc3339(now or datetime.now(UTC)),
        "region": region,
        "version": version,
        "tasksReported": int(tasks_reported),
    }
