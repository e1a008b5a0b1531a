"""The node's own tasks: merged lifecycle rows in the `tasks` table (never evicted, never shared)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..model import TASK_STATUSES, LocalTask, TaskEvent
from .engine import Engine
from .rows import merge_event
from .times import DAY_MS, from_ms, now_ms, to_ms

_LOCAL_COL_LIST = (
    "execution_id",
    "status",
    "received_at",
    "started_at",
    "finished_at",
    "chain_id",
    "block_number",
    "task_type",
    "execution_time_ms",
    "exit_code",
    "steps",
    "memory_peak",
    "cached",
    "private",
)
_LOCAL_COLS = ", ".join(_LOCAL_COL_LIST)


def _local_task(row: tuple) -> LocalTask:
    return LocalTask(
        execution_id=row[0],
        status=row[1],
        received_at=from_ms(row[2]),
        started_at=from_ms(row[3]),
        finished_at=from_ms(row[4]),
        chain_id=row[5],
        block_number=row[6],
        task_type=row[7],
        execution_time_ms=row[8],
        exit_code=row[9],
        steps=row[10],
        memory_peak=row[11],
        cached=None if row[12] is None else bool(row[12]),
        private=json.loads(row[13]) if row[13] else {},
    )


def _local_values(t: LocalTask) -> tuple:
    return (
        t.execution_id,
        t.status,
        to_ms(t.received_at),
        to_ms(t.started_at),
        to_ms(t.finished_at),
        t.chain_id,
        t.block_number,
        t.task_type,
        t.execution_time_ms,
        t.exit_code,
        t.steps,
        t.memory_peak,
        None if t.cached is None else int(t.cached),
        json.dumps(t.private, sort_keys=True, default=str),
    )


class LocalTasks:
    """The `tasks` table (a part of `Store`)."""

    engine: Engine

    def get_local_task(self, execution_id: str) -> LocalTask | None:
        row = (
            self.engine.reader()
            .execute(f"SELECT {_LOCAL_COLS} FROM tasks WHERE execution_id = ?", (execution_id,))  # noqa: S608 - fixed column lists, values bound
            .fetchone()
        )
        return None if row is None else _local_task(row)

    def upsert_local_task(self, ev: TaskEvent) -> tuple[LocalTask, bool]:
        """Merge one lifecycle event into its task row; (merged row, whether anything changed)."""
        task, changed, _ = self.merge_local_task(ev)
        return task, changed

    def merge_local_task(self, ev: TaskEvent) -> tuple[LocalTask, bool, str | None]:
        """Like `upsert_local_task`, plus the status the row had before (None if it is new)."""

        def merge(conn: sqlite3.Connection) -> tuple[LocalTask, bool, str | None]:
            row = conn.execute(
                f"SELECT {_LOCAL_COLS} FROM tasks WHERE execution_id = ?",  # noqa: S608 - fixed columns
                (ev.execution_id,),
            ).fetchone()
            old = _local_task(row) if row else None
            new = merge_event(old, ev)
            if old is not None and new == old:
                return old, False, old.status
            now = now_ms()
            values = _local_values(new)
            if old is None:
                first_seen = min(x for x in (to_ms(ev.at), now) if x is not None)
                conn.execute(
                    f"INSERT INTO tasks ({_LOCAL_COLS}, first_seen, updated_at) VALUES "  # noqa: S608 - fixed column lists, values bound
                    f"({', '.join('?' * (len(values) + 2))})",
                    (*values, first_seen, now),
                )
            else:
                sets = ", ".join(f"{c} = ?" for c in _LOCAL_COL_LIST[1:])
                conn.execute(
                    f"UPDATE tasks SET {sets}, updated_at = ? WHERE execution_id = ?",  # noqa: S608 - fixed column lists, values bound
                    (*values[1:], now, new.execution_id),
                )
            return new, True, None if old is None else old.status

        return self.engine.write(f"storing local task {ev.execution_id}", merge)

    def list_local_tasks(
        self,
        limit: int = 100,
        offset: int = 0,
        status: str | None = None,
    ) -> tuple[list[LocalTask], int]:
        """Newest first; `total` counts every row with that status (all rows without one)."""
        conn = self.engine.reader()
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        total = conn.execute(f"SELECT COUNT(*) FROM tasks {where}", params).fetchone()[0]  # noqa: S608 - fixed column lists, values bound
        rows = conn.execute(
            f"SELECT {_LOCAL_COLS} FROM tasks {where} ORDER BY first_seen DESC, rowid DESC LIMIT ? OFFSET ?",  # noqa: S608 - fixed column lists, values bound
            (*params, int(limit), int(offset)),
        ).fetchall()
        return [_local_task(r) for r in rows], total

    def local_stats(self) -> dict[str, Any]:
        """Counts of the local node's own tasks (all time, by status, and the last 24 h)."""
        conn = self.engine.reader()
        since = now_ms() - DAY_MS
        by_status = dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall())
        r = conn.execute(
            """SELECT COUNT(*), SUM(status = 'completed'), SUM(status = 'failed'),
                      AVG(CASE WHEN status = 'completed' THEN execution_time_ms END)
               FROM tasks WHERE first_seen >= ?""",
            (since,),
        ).fetchone()
        return {
            "total": sum(by_status.values()),
            "byStatus": {s: by_status.get(s, 0) for s in TASK_STATUSES},
            "activeTasks": by_status.get("received", 0) + by_status.get("running", 0),
            "tasks24h": r[0] or 0,
            "tasksCompleted24h": r[1] or 0,
            "tasksFailed24h": r[2] or 0,
            "avgExecutionMs": None if r[3] is None else round(r[3]),
        }
