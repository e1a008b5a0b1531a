"""Wire constants of federation contract v1 (docs/PROTOCOL.md).

The one place that knows subjects, message shapes, limits and error codes. The seed
package may import this module (for subject permissions); nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
from typing import Literal

import msgspec

PROTOCOL_VERSION = 1
DEFAULT_SUBJECT_PREFIX = "tbfed"
MAX_MESSAGE_BYTES = 1024
MAX_FUTURE_SKEW_S = 300
# Presence and stats older than this change nothing (PROTOCOL.md §4): the clock tolerance
# of MAX_FUTURE_SKEW_S the other way, plus room for a sender's outbound queue.
MAX_PAST_AGE_S = 300

HEADER_KEY = "Tbf-Key"
HEADER_SIG = "Tbf-Sig"

KIND_TASK = "task"
KIND_STATS = "stats"
KIND_PRESENCE = "presence"
KINDS = (KIND_TASK, KIND_STATS, KIND_PRESENCE)

TASK_EVENTS = ("task_received", "task_completed", "task_failed")
STATS_EVENTS = ("node_stats",)
PRESENCE_EVENTS = ("node_online", "node_heartbeat", "node_offline")
EVENT_KIND = {
    **{e: KIND_TASK for e in TASK_EVENTS},
    **{e: KIND_STATS for e in STATS_EVENTS},
    **{e: KIND_PRESENCE for e in PRESENCE_EVENTS},
}
EVENT_STATUS = {"task_received": "received", "task_completed": "completed", "task_failed": "failed"}

REGIONS = (
    "NA-EAST",
    "NA-WEST",
    "SA",
    "EU-WEST",
    "EU-EAST",
    "AFRICA",
    "MIDDLE-EAST",
    "ASIA",
    "OCEANIA",
    "UNKNOWN",
)

# Derived ids are "node-" + 10 hex of sha256(pubkey); custom ids follow the looser rule.
DERIVED_NODE_ID_RE = re.compile(r"^node-[0-9a-f]{10}$")
NODE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
TASK_ID_RE = re.compile(r"^global-task-[0-9a-f]{12}$")
TASK_TYPE_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_EXECUTION_TIME_MS = 86_400_000

# Per-sender receive limits (PROTOCOL.md §4): (rate per second, burst).
RATE_LIMITS = {
    KIND_TASK: (50.0, 200.0),
    KIND_STATS: (1.0, 2.0),  # burst 2: a sender at 1/s must not be dropped for network jitter
    KIND_PRESENCE: (0.2, 1.0),
}

HEARTBEAT_INTERVAL_S = 30
STATS_MAX_SILENCE_S = 30
# With task events off, node_stats must not time each task: it goes out only once per wall-clock
# bucket (at :00, :15, :30, :45 UTC), never on a change (docs/privacy.md, honest limits).
STATS_PRIVATE_BUCKET_S = 900
PEER_ONLINE_S = 90
PEER_FORGET_S = 600


class FedCode(enum.StrEnum):
    """Error codes of PROTOCOL.md §5."""

    SEED_UNAVAILABLE = "FED_001"
    AUTH_FAILED = "FED_002"
    VALIDATION_FAILED = "FED_003"
    RATE_LIMITED = "FED_004"
    INVALID_NODE_ID = "FED_005"
    DATABASE_ERROR = "FED_006"
    NETWORK_TIMEOUT = "FED_007"
    TLS_ERROR = "FED_008"
    VERSION_MISMATCH = "FED_009"
    SUBSCRIPTION_FAILED = "FED_010"
    HISTORY_MISSING = "FED_011"
    HISTORY_REFUSED = "FED_012"


FED_MEANING = {
    FedCode.SEED_UNAVAILABLE: "seed server unavailable",
    FedCode.AUTH_FAILED: "authentication failed",
    FedCode.VALIDATION_FAILED: "message validation failed",
    FedCode.RATE_LIMITED: "rate limit exceeded",
    FedCode.INVALID_NODE_ID: "invalid node id",
    FedCode.DATABASE_ERROR: "database error",
    FedCode.NETWORK_TIMEOUT: "network timeout",
    FedCode.TLS_ERROR: "TLS certificate error",
    FedCode.VERSION_MISMATCH: "protocol version mismatch",
    FedCode.SUBSCRIPTION_FAILED: "subscription failed",
    FedCode.HISTORY_MISSING: "seed offers no task history (catch-up skipped)",
    FedCode.HISTORY_REFUSED: "seed refused reading the task history",
}


class FederationState(enum.StrEnum):
    DISABLED = "DISABLED"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DEGRADED = "DEGRADED"  # connected, but the seed refuses our publishes (FED_010): nothing we send arrives
    RECONNECTING = "RECONNECTING"
    ERROR = "ERROR"


# States in which the connection to a seed is up (DEGRADED: up, but our publishes are refused).
CONNECTED_STATES = (FederationState.CONNECTED, FederationState.DEGRADED)


def subject_root(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """`tbfed.v1` for the default prefix."""
    return f"{prefix}.v{PROTOCOL_VERSION}"


def subject_for(kind: str, node_id: str, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The subject a node publishes one kind of message on."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    return f"{subject_root(prefix)}.{kind}.{node_id}"


def subscribe_subject(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The single wildcard subscription a receiver makes."""
    return f"{subject_root(prefix)}.>"


def node_publish_permission(node_id: str, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """Publish permission of an enrolled node's own NATS user."""
    return f"{subject_root(prefix)}.*.{node_id}"


def node_inbox_prefix(node_id: str) -> str:
    """The only inbox an enrolled node may subscribe to in operator mode (nats-py's inbox_prefix)."""
    return f"_INBOX.{node_id}"


def history_stream(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The JetStream stream of a federation's task events (spec `history:`): `TBFED_V1_TASKS`."""
    return f"{subject_root(prefix)}_tasks".replace(".", "_").replace("-", "_").upper()


def history_subject(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """What the history stream keeps: task events only (presence and stats are live-only)."""
    return f"{subject_root(prefix)}.{KIND_TASK}.>"


def history_read_permissions(prefix: str = DEFAULT_SUBJECT_PREFIX) -> list[str]:
    """The JetStream API subjects a receiver may publish to read the history stream, and nothing else:
    stream info, (ephemeral/ordered) consumer create, next-message requests, acks and flow control
    (nats-server server/jetstream_api.go: JSApiStreamInfo, JSApiConsumerCreate(Ex), JSApiRequestNext;
    $JS.ACK / $JS.FC reply subjects). No purge, delete, update or message-delete subject."""
    s = history_stream(prefix)
    return [
        f"$JS.API.STREAM.INFO.{s}",
        f"$JS.API.CONSUMER.CREATE.{s}",
        f"$JS.API.CONSUMER.CREATE.{s}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{s}.>",
        f"$JS.ACK.{s}.>",
        f"$JS.FC.{s}.>",
    ]


# ---- wire messages (msgspec: strict types, unknown fields ignored) ----

Region = Literal[
    "NA-EAST", "NA-WEST", "SA", "EU-WEST", "EU-EAST", "AFRICA", "MIDDLE-EAST", "ASIA", "OCEANIA", "UNKNOWN"
]


class TaskMessage(msgspec.Struct, forbid_unknown_fields=False):
    v: int
    event: Literal["task_received", "task_completed", "task_failed"]
    nodeId: str
    timestamp: str
    taskId: str
    chainId: int
    blockNumber: int | None
    taskType: str
    status: Literal["received", "completed", "failed"]
    executionTimeMs: int | None = None


class StatsMessage(msgspec.Struct, forbid_unknown_fields=False):
    v: int
    event: Literal["node_stats"]
    nodeId: str
    timestamp: str
    tasks24h: int
    tasksCompleted24h: int
    tasksFailed24h: int
    activeTasks: int
    avgExecutionMs: int | None = None


class PresenceMessage(msgspec.Struct, forbid_unknown_fields=False):
    v: int
    event: Literal["node_online", "node_heartbeat", "node_offline"]
    nodeId: str
    timestamp: str
    region: Region
    version: str
    tasksReported: int


MESSAGE_TYPES = {KIND_TASK: TaskMessage, KIND_STATS: StatsMessage, KIND_PRESENCE: PresenceMessage}

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
