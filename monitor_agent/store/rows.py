"""What the store keeps, and the pure rules that merge new facts into it (no database here).

`merge_event(old, ev)`: a local task row after one more lifecycle event from the node's log.
`PeerState.heard(...)`: a peer after one more message from it.
Both are pure and idempotent: applying the same fact twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from ..model import LocalTask, TaskEvent, TaskStatus
from ..protocol import PEER_ONLINE_S

# Local status precedence: a merged row never moves back to an earlier status.
# `failed` outranks `completed`: an error naming the execution is stronger evidence than
# a later "completed" line, and a non-zero exit code makes a completion a failure anyway.
STATUS_RANK: dict[str, int] = {"received": 0, "running": 1, "unknown": 2, "completed": 3, "failed": 4}
KIND_STATUS: dict[str, TaskStatus] = {
    "received": "received",
    "started": "running",
    "completed": "completed",
    "failed": "failed",
}
# Facts of a task event that fill in the row; a later event with a value overrides an earlier one.
_FACTS = ("chain_id", "block_number", "task_type", "execution_time_ms", "exit_code", "steps", "memory_peak")


def _utc(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    # Stored with ms precision: round here so a re-delivered event compares equal to the stored row.
    return datetime.fromtimestamp(int(at.timestamp() * 1000) / 1000, UTC)


def merge_event(old: LocalTask | None, ev: TaskEvent) -> LocalTask:
    """The row after applying `ev` to `old` (pure; applying the same event twice is a no-op).

    Times: the earliest `received`/`started` and the latest finish win. Facts fill in and a
    later value overrides (metrics arrive last). Status only moves forward (STATUS_RANK); a
    non-zero exit code makes the task failed. Private fields accumulate."""
    at = _utc(ev.at)
    t = (
        LocalTask(
            ev.execution_id, "received", None, None, None, None, None, None, None, None, None, None, None, {}
        )
        if old is None
        else LocalTask(
            old.execution_id,
            old.status,
            old.received_at,
            old.started_at,
            old.finished_at,
            old.chain_id,
            old.block_number,
            old.task_type,
            old.execution_time_ms,
            old.exit_code,
            old.steps,
            old.memory_peak,
            old.cached,
            dict(old.private),
        )
    )
    status: TaskStatus = KIND_STATUS.get(ev.kind, "unknown")
    if ev.kind == "completed" and ev.exit_code not in (None, 0):
        status = "failed"
    if ev.kind == "received":
        t.received_at = at if t.received_at is None else min(t.received_at, at)
    elif ev.kind == "started":
        t.started_at = at if t.started_at is None else min(t.started_at, at)
    else:
        t.finished_at = at if t.finished_at is None else max(t.finished_at, at)
    for name in _FACTS:
        value = getattr(ev, name)
        if value is not None:
            setattr(t, name, value)
    if ev.cached is not None:
        t.cached = bool(ev.cached)
    if t.exit_code not in (None, 0):
        status = "failed"
    if old is None or STATUS_RANK[status] > STATUS_RANK.get(t.status, 0):
        t.status = status
    if ev.private:
        t.private.update(json.loads(json.dumps(ev.private, default=str)))
    return t


@dataclass(slots=True, frozen=True)
class FederationTaskRow:
    """One validated task event received from a peer (what the writer inserts)."""

    source_node: str
    task_id: str
    event: str
    chain_id: int
    block_number: int | None
    task_type: str
    status: str
    execution_time_ms: int | None
    timestamp: str
    received_at: int  # epoch ms


@dataclass(slots=True)
class PeerState:
    node_id: str
    region: str
    version: str | None
    first_seen: int
    last_seen: int
    last_event: str | None
    tasks_reported: int
    pinned_key: str | None
    stats: dict | None = None

    @classmethod
    def first_heard(cls, node_id: str, at_ms: int, *, event: str | None = None, region: str | None = None,
                    version: str | None = None, tasks_reported: int | None = None,
                    pinned_key: str | None = None, stats: dict | None = None) -> PeerState:  # fmt: skip
        """A peer heard from for the first time."""
        return cls(
            node_id, region or "UNKNOWN", version, at_ms, at_ms, event, tasks_reported or 0, pinned_key, stats
        )

    def heard(self, at_ms: int, *, event: str | None = None, region: str | None = None,
              version: str | None = None, tasks_reported: int | None = None,
              pinned_key: str | None = None, stats: dict | None = None) -> bool:  # fmt: skip
        """Merge one more message from this peer; True when it pinned the peer's key just now.

        Last seen only moves forward; what the message says replaces what was known; the first key
        seen stays pinned (trust on first use: a later key never replaces it)."""
        self.last_seen = max(self.last_seen, at_ms)
        if event is not None:
            self.last_event = event
        if region is not None:
            self.region = region
        if version is not None:
            self.version = version
        if tasks_reported is not None:
            self.tasks_reported = tasks_reported
        if stats is not None:
            self.stats = stats
        if pinned_key is not None and self.pinned_key is None:
            self.pinned_key = pinned_key
            return True
        return False

    def online(self, now: int) -> bool:
        return self.last_event != "node_offline" and now - self.last_seen < PEER_ONLINE_S * 1000
