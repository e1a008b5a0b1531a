"""The node's EventDB (`…-eventDB.json`, `{"records": [...]}`) as task events and invoices. Pure.

Record kinds used: `task_created` (the task under `payload.message`), `computed_outcome`
(the execution's result and metrics), `invoice`. Others are counted and skipped. Field
placement differs between node versions, so values are looked up forgivingly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..model import TaskEvent
from . import fields as F
from .parser import LogParser
from .records import Invoice

_KIND_KEYS = ("type", "kind", "event", "topic", "name")
_TIME_KEYS = ("timestamp", "time", "createdAt", "created_at", "date", "at")


def _kind(rec: dict) -> str | None:
    for key in _KIND_KEYS:
        value = rec.get(key)
        if isinstance(value, str):
            return value
    return None


def _when(rec: dict) -> datetime | None:
    value = None
    for key in _TIME_KEYS:
        if key in rec:
            value = rec[key]
            break
    if value is None:
        value = F.find(rec, *_TIME_KEYS)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        secs = value / 1000 if value > 1e11 else value  # milliseconds or seconds
        try:
            return datetime.fromtimestamp(secs, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


def eventdb_records(doc: Any, stats: Counter | None = None) -> Iterator[TaskEvent | Invoice]:
    """Task events and invoices of an EventDB document, in record order."""
    stats = stats if stats is not None else Counter()
    records = doc.get("records") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    if not isinstance(records, list):
        raise ValueError('not an EventDB file: expected {"records": [...]}')
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for rec in records:
        stats["records"] += 1
        if not isinstance(rec, dict):
            stats["skipped"] += 1
            continue
        kind = _kind(rec)
        at = _when(rec) or epoch
        exec_id = F.find(rec, "executionId", "execution_id")
        task_id = F.find(rec, "taskId", "taskPath")
        task_id = task_id if isinstance(task_id, str) else None
        if not isinstance(exec_id, str) or not exec_id:
            exec_id = task_id  # as the log parser does: the task id is the next best local key
        if kind == "task_created" and exec_id:
            stats["task_created"] += 1
            private: dict[str, Any] = {}
            if task_id:
                private["task_id"] = F.short_text(task_id)
            for key, name in (("blockHash", "block_hash"), ("input", "input")):
                value = F.find(rec, key)
                if value is not None:
                    private[name] = F.short_text(value if isinstance(value, str) else str(value))
            chain = F.as_int(F.find(rec, "chainId", "chain_id"))
            block = F.as_int(F.find(rec, "blockNumber", "block_number"))
            yield TaskEvent(
                "received",
                exec_id,
                at,
                chain_id=chain if chain is not None and chain >= 0 else None,
                block_number=block if block is not None and block >= 0 else None,
                task_type=F.task_type_of(task_id),
                private=private,
            )
        elif kind == "computed_outcome" and exec_id:
            stats["computed_outcome"] += 1
            payload = rec.get("payload")
            body = payload if isinstance(payload, dict) else rec
            outcome = body.get("outcome")
            metrics = outcome if isinstance(outcome, dict) else body
            ev = TaskEvent("completed", exec_id, at)
            LogParser._apply_metrics(ev, metrics)
            error = F.find(rec, "error")
            if error:
                ev.private["error"] = F.short_text(str(error), 500)
            if error or (ev.exit_code is not None and ev.exit_code != 0):
                ev.kind = "failed"
            yield ev
        elif kind == "invoice":
            stats["invoice"] += 1
            invoice_id = F.find(rec, "invoiceId")
            inv = Invoice(at, exec_id, str(invoice_id) if invoice_id is not None else None)
            items = F.find(rec, "lineItem", "lineItems")
            if isinstance(items, list):
                dicts = [i for i in items if isinstance(i, dict)]
                steps = [F.as_int(i.get("total_steps_computed")) for i in dicts]
                peaks = [F.as_int(i.get("peak_memory_used")) for i in dicts]
                inv.steps = (
                    sum(s for s in steps if s is not None) if any(s is not None for s in steps) else None
                )
                inv.memory_peak = max((p for p in peaks if p is not None), default=None)
                inv.private["line_items"] = items[:16]
            if task_id:
                inv.private["task_id"] = F.short_text(task_id)
            yield inv
        else:
            stats["skipped"] += 1
