"""Where a source's parsed records go: task events to the agent, the rest to the local store."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..interfaces import AgentLike
from ..logs import Invoice, LogEntry, SlotUsage
from ..model import TaskEvent

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("monitor_agent.sources")


class RecordSink:
    """Delivers parser output. `deliver` raises the store's `StoreError` (FED_006) if the
    database refused a task event: the caller keeps its cursor and reads again later."""

    def __init__(self, agent: AgentLike):
        self.agent = agent
        self.counts: Counter[str] = Counter()
        self.last_slots: dict[str, SlotUsage] = {}

    def deliver(self, records: list) -> None:
        if not records:
            return
        logs: list[tuple] = []
        submit = self.agent.submit_task_event
        store = self.agent.store
        counts = self.counts
        for rec in records:
            kind = type(rec)
            if kind is TaskEvent:
                submit(rec)
                counts["task_events"] += 1
            elif kind is LogEntry:
                logs.append((rec.at, rec.level or "info", rec.message))
            elif kind is SlotUsage:
                self.last_slots[rec.semaphore] = rec  # the local view shows current slot use
                counts["slot_usages"] += 1
            elif kind is Invoice:
                self._invoice(store, rec)
        if logs:
            store.add_log_entries(logs)
            counts["log_entries"] += len(logs)

    def _invoice(self, store: Store, inv: Invoice) -> None:
        self.counts["invoices"] += 1
        if inv.invoice_id is None:
            return
        data = {"steps": inv.steps, "memoryPeak": inv.memory_peak, **inv.private}
        store.add_invoice(inv.invoice_id, inv.execution_id, inv.at, data)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        out["slots"] = {
            name: {"active": s.active, "capacity": s.capacity, "at": s.at.isoformat()}
            for name, s in self.last_slots.items()
        }
        return out
