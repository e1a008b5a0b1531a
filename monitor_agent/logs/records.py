"""What the parser emits besides `TaskEvent`s: local-only records for the node's own view.

None of these ever reaches the anonymizer; they feed the local store (or are only counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal


@dataclass(slots=True)
class SlotUsage:
    """A `Semaphore <name>` slot taken or released (how busy the node's executors are)."""

    at: datetime
    semaphore: str
    action: Literal["acquired", "released"]
    active: int
    capacity: int


@dataclass(slots=True)
class Invoice:
    """An invoice written by the node's InvoiceSubscriber (amounts and accounts are private)."""

    at: datetime
    execution_id: str | None
    invoice_id: str | None
    steps: int | None = None
    memory_peak: int | None = None
    private: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LogEntry:
    """An entry the parser did not turn into anything else, kept as raw text for the local log view.

    `reason` says why: `unknown` message, `invalid_json`, `orphan` continuation lines without a
    header, or `error` (an error-level entry that names no task).
    """

    at: datetime | None
    level: str | None
    message: str
    reason: str = "unknown"


@dataclass(slots=True)
class ParseStats:
    """Counters of one parser: what it read and what it made of it."""

    lines: int = 0
    entries: int = 0
    received: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    slot_usages: int = 0
    invoices: int = 0
    raw_entries: int = 0
    invalid_json: int = 0
    truncated: int = 0  # lines or entries cut at the size caps
    orphan_lines: int = 0  # continuation lines with no entry before them
    unattributed: int = 0  # task messages whose execution could not be told

    @property
    def task_events(self) -> int:
        return self.received + self.started + self.completed + self.failed

    def as_dict(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["task_events"] = self.task_events
        return out
