"""The agent's own vocabulary: what the log parser produces and what the local store keeps.

`TaskEvent` is one step of a local task's lifecycle as read from the node (parser output).
`LocalTask` is the merged local row. Only the *public* fields of a LocalTask may ever
reach the anonymizer; everything identifying lives in `private` and never leaves the
machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

TaskEventKind = Literal["received", "started", "completed", "failed"]
TaskStatus = Literal["received", "running", "completed", "failed", "unknown"]
# The local status vocabulary, in the order the API, its validation and the dashboard list it.
# The one list: everything else (store counters, validation, serializers, OpenAPI, dashboard) imports it.
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
# The statuses at which a local task is broadcast (once each) when the operator shares tasks: those
# with a task event on the wire (protocol.EVENT_STATUS; a test holds the two equal).
BROADCAST_STATUSES: tuple[TaskStatus, ...] = ("received", "completed", "failed")


@dataclass(slots=True)
class TaskEvent:
    """One lifecycle step of one local task execution, keyed by the node's execution id."""

    kind: TaskEventKind
    execution_id: str
    at: datetime  # timezone-aware UTC
    chain_id: int | None = None
    block_number: int | None = None
    task_type: str | None = None  # from the task id prefix: js, rs, api, ...
    execution_time_ms: int | None = None
    exit_code: int | None = None
    steps: int | None = None
    memory_peak: int | None = None
    cached: bool | None = None
    # Identifying data (task id/hash, block hash, input, wallet, ...): local only.
    private: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LocalTask:
    """A row of the local `tasks` table after merging its events."""

    execution_id: str
    status: TaskStatus
    received_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    chain_id: int | None
    block_number: int | None
    task_type: str | None
    execution_time_ms: int | None
    exit_code: int | None
    steps: int | None
    memory_peak: int | None
    cached: bool | None
    private: dict[str, Any] = field(default_factory=dict)
