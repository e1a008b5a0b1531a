"""Every JSON shape the agent's HTTP API answers, defined once (docs/PROTOCOL.md §6).

Each shape is a msgspec Struct: the handlers build these and msgspec encodes them (field order
is the wire order), tests decode real responses into them strictly (no unknown, missing or
mistyped field passes), and `/api/openapi.json` is generated from them (web/openapi.py). The
WebSocket feed sends the same `Status` (hello) and `LocalTask` (local_task) shapes, and the
feed's task without `receivedAt` (federation_task).

Python names are snake_case; on the wire they are camelCase (`rename="camel"`:
`avg_execution_ms` is `avgExecutionMs`; the `...24h` names are given explicitly).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ..model import TASK_STATUSES, TaskStatus
from ..protocol import REGIONS, FederationState

# ---- field types ----

Timestamp = Annotated[
    str,
    msgspec.Meta(
        description="RFC 3339, UTC, whole seconds, with a Z",
        examples=["2024-01-15T10:30:00Z"],
        extra_json_schema={"format": "date-time"},
    ),
]
Count = Annotated[int, msgspec.Meta(ge=0)]
Region = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(REGIONS)})]
State = Annotated[str, msgspec.Meta(extra_json_schema={"enum": [s.value for s in FederationState]})]
FedCodeText = Annotated[str, msgspec.Meta(pattern="^(FED_0[0-9][0-9])?$")]
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "uri_too_long",
    "upgrade_required",
    "internal_error",
    "unavailable",
]


class Shape(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Base of every response shape: camelCase on the wire, nothing unknown accepted."""


# ---- errors ----


class ErrorDetail(Shape):
    code: ErrorCode
    message: Annotated[str, msgspec.Meta(description="Names the parameter and what is allowed.")]


class Error(Shape):
    """Every error answer of the API."""

    error: ErrorDetail


class FederationError(Shape):
    """The last federation (or database) error: a FED_0xx code (docs/PROTOCOL.md §5)."""

    code: FedCodeText
    message: str
    at: Timestamp | None


# ---- liveness ----


class Health(Shape):
    status: Literal["ok"]
    version: str


class ReadyFederation(Shape):
    enabled: bool
    state: State


class Ready(Shape):
    """Readiness: the database is writable (federation state is reported, not required)."""

    ready: bool
    database: Literal["writable", "not writable"]
    federation: ReadyFederation


# ---- federation (PROTOCOL.md §6) ----


class CatchUp(Shape):
    """History catch-up progress (PROTOCOL.md §6, `catchUp`)."""

    catching_up: bool
    history_offered: bool | None
    code: Annotated[str, msgspec.Meta(pattern="^FED_0[0-9][0-9]$")] | None
    since: Timestamp | None
    last_completed_at: Timestamp | None
    read: Count
    accepted: Count
    dropped: Count
    pending: Count
    max_age_s: int | None


class StatusStats(Shape):
    connected_peers: Count
    tasks24h: Count
    active_nodes: Count
    tasks_completed24h: Count = msgspec.field(name="tasksCompleted24h")
    avg_execution_ms: int | None


class Status(Shape):
    """Federation state, node id, last error, catch-up, network stats."""

    enabled: bool
    connected: bool
    state: State
    node_id: str | None
    last_error: FederationError | None
    catch_up: CatchUp
    stats: StatusStats


class GlobalTask(Shape):
    """A task received from the federation (its `receivedAt` is when this node stored it)."""

    task_id: Annotated[str, msgspec.Meta(examples=["global-task-5d41402abc4b"])]
    chain_id: Count
    block_number: Count | None
    task_type: str
    status: Literal["received", "completed", "failed"]
    execution_time_ms: Count | None
    received_at: Timestamp
    source_node: str


class GlobalTasks(Shape):
    tasks: list[GlobalTask]
    total: Annotated[int, msgspec.Meta(ge=0, description="All rows matching the filters.")]


class Peer(Shape):
    node_id: str
    region: Region
    online: Annotated[bool, msgspec.Meta(description="Last message under 90 s old.")]
    tasks_reported: Count
    last_seen: Timestamp | None


class Peers(Shape):
    peers: list[Peer]
    total: Count


class Settings(Shape):
    """The four federation switches and read-only facts."""

    enabled: Annotated[bool, msgspec.Meta(description="Federation on (opt-in).")]
    broadcast_tasks: bool
    broadcast_stats: bool
    receive_enabled: bool
    seed_url: Annotated[str, msgspec.Meta(description="Seed URL list, password removed.")]
    node_id: str | None
    region: Region
    privacy: Literal["standard", "strict"]
    version: str


class SettingsApplied(Settings):
    restart_required: Annotated[bool, msgspec.Meta(description="False when every change was applied live.")]


class SettingsChange(Shape):
    """The request body of POST /api/federation/settings: at least one switch."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    broadcast_tasks: bool | msgspec.UnsetType = msgspec.UNSET
    broadcast_stats: bool | msgspec.UnsetType = msgspec.UNSET
    receive_enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Deleted(Shape):
    tasks: Count
    peers: Count


class Cleared(Shape):
    """What POST /api/federation/clear deleted."""

    deleted: Deleted


# ---- this node ----


class LocalTask(Shape):
    """One of this node's tasks; `executionId` and `private` only with the token (never on /ws)."""

    status: TaskStatus
    received_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    chain_id: int | None
    block_number: int | None
    task_type: str | None
    execution_time_ms: int | None
    exit_code: int | None
    steps: int | None
    memory_peak: int | None
    cached: bool | None
    execution_id: Annotated[str, msgspec.Meta(description="Only with the token.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    private: (
        Annotated[dict[str, Any], msgspec.Meta(description="Only with the token: identifying local data.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class LocalTasks(Shape):
    tasks: list[LocalTask]
    total: Count
    private: Annotated[bool, msgspec.Meta(description="True when private fields are included.")]


class ByStatus(Shape):
    """Counts per local status (the fields are model.TASK_STATUSES, checked below)."""

    received: Count
    running: Count
    completed: Count
    failed: Count
    unknown: Count


if ByStatus.__struct_fields__ != TASK_STATUSES:  # the one status vocabulary (model.py)
    raise AssertionError("shapes.ByStatus must list model.TASK_STATUSES in order")


class LocalStats(Shape):
    """This node's task counters: all time by status, and the last 24 h."""

    total: Annotated[int, msgspec.Meta(ge=0, description="All tasks seen, all time.")]
    by_status: ByStatus
    active_tasks: Annotated[int, msgspec.Meta(ge=0, description="Received or running now.")]
    tasks24h: Count
    tasks_completed24h: Count = msgspec.field(name="tasksCompleted24h")
    tasks_failed24h: Count = msgspec.field(name="tasksFailed24h")
    avg_execution_ms: int | None


class Outgoing(Shape):
    """One outgoing message exactly as sent (or blocked by the privacy gate)."""

    subject: str | None
    payload: Annotated[str, msgspec.Meta(description="The exact bytes sent (UTF-8).")]
    headers: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="The NATS headers sent with it: Tbf-Key (this node's public key)"
            " and Tbf-Sig (the payload's signature)."
        ),
    ]
    at: Timestamp | None
    blocked: bool
    reason: str | None


class Privacy(Shape):
    """The last outgoing messages exactly as sent, and what is never shared."""

    outbox: list[Outgoing]
    blocked: Count
    never_shared: list[str]
    shared: list[str]


# ---- me vs network (GET /api/compare, docs/compare.md; built by monitor_agent/compare.py) ----

# A computed figure: JSON keeps what the computation gave (an int stays an int).
Number = int | float
Rate = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ExecutionMs(Shape):
    p50: Number | None
    p90: Number | None
    p99: Number | None


class CompareFigures(Shape):
    """One side's figures in the window (`nodes`: network only, the contributing nodes)."""

    events: Annotated[int, msgspec.Meta(ge=0, description="Completed + failed in the window.")]
    completed: Count
    failed: Count
    failure_rate: Rate | None
    tasks_per_minute: Number
    execution_ms: ExecutionMs
    nodes: Count | msgspec.UnsetType = msgspec.UNSET


class Rank(Shape):
    metric: Literal["p50ExecutionMs"]
    slower_than_pct: Annotated[int, msgspec.Meta(ge=0, le=100)]
    nodes: Annotated[int, msgspec.Meta(ge=1)]
    text: str


class Verdict(Shape):
    verdict: Literal["not_enough_data", "in_line", "your_node", "the_network"]
    rule: Literal["floor", "own_failure_rate", "network_failure_spike", "own_slow", "none"]
    text: Annotated[str, msgspec.Meta(description="The verdict in words, with its numbers.")]
    numbers: Annotated[
        dict[str, Number | None],
        msgspec.Meta(description="Every figure the verdict rests on (docs/compare.md)."),
    ]


class SeriesPoint(Shape):
    """One bucket (10 min for 1h, 1 h for 24h); the series is oldest first."""

    t: Timestamp
    network_p50: Number | None
    own_p50: Number | None
    network_failure_rate: Number | None
    own_failure_rate: Number | None


class CompareChain(Shape):
    chain_id: Count
    own: CompareFigures
    network: CompareFigures
    rank: Rank | None
    verdict: Verdict
    series: list[SeriesPoint]


class Sketch(Shape):
    algorithm: Literal["DDSketch"]
    relative_accuracy: float
    node_relative_accuracy: float


class CompareRules(Shape):
    min_other_nodes: int
    min_events: int
    z_critical: float
    failure_margin: float
    slow_ratio: float


class Compare(Shape):
    """Me vs network: this node's figures against the federation's, per chain, with a verdict."""

    window: Literal["1h", "24h"]
    window_start: Timestamp
    generated_at: Timestamp
    task_type: str | None
    seeding: Annotated[bool, msgspec.Meta(description="True while start-up seeding from the store runs.")]
    sketch: Sketch
    rules: CompareRules
    chains: list[CompareChain]
