"""Small local tables: source cursors, raw log lines the parser did not understand, invoices, meta."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .engine import Engine
from .times import iso, now_ms, to_ms

LOG_ENTRIES_CAP = 10_000


class LocalRecords:
    """The `cursors`, `log_entries`, `invoices` and `meta` tables (a part of `Store`)."""

    engine: Engine

    def get_cursor(self, key: str) -> dict | None:
        row = self.engine.reader().execute("SELECT value FROM cursors WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_cursor(self, key: str, value: dict) -> None:
        text = json.dumps(value, sort_keys=True)
        self.engine.write(
            f"saving cursor {key}",
            lambda c: c.execute(
                "INSERT INTO cursors (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, text, now_ms()),
            ),
        )

    def add_log_entries(self, entries: Iterable[tuple[datetime | str | int | None, str, str]]) -> int:
        """Keep raw log lines the parser did not understand (newest LOG_ENTRIES_CAP kept)."""
        now = now_ms()
        values = [(to_ms(at) if at is not None else now, str(level), str(msg)) for at, level, msg in entries]
        if not values:
            return 0

        def add(conn: sqlite3.Connection) -> int:
            conn.executemany("INSERT INTO log_entries (at, level, message) VALUES (?, ?, ?)", values)
            conn.execute(
                "DELETE FROM log_entries WHERE id <= (SELECT MAX(id) FROM log_entries) - ?",
                (LOG_ENTRIES_CAP,),
            )
            return len(values)

        return self.engine.write("storing log entries", add)

    def list_log_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = (
            self.engine.reader()
            .execute("SELECT at, level, message FROM log_entries ORDER BY id DESC LIMIT ?", (int(limit),))
            .fetchall()
        )
        return [{"at": iso(a), "level": lv, "message": m} for a, lv, m in rows]

    def add_invoice(self, invoice_id: str, execution_id: str | None, at: Any, data: dict) -> None:
        self.engine.write(
            f"storing invoice {invoice_id}",
            lambda c: c.execute(
                "INSERT INTO invoices (invoice_id, execution_id, at, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(invoice_id) DO UPDATE SET execution_id = excluded.execution_id, "
                "at = excluded.at, data = excluded.data",
                (invoice_id, execution_id, to_ms(at) or now_ms(), json.dumps(data, sort_keys=True)),
            ),
        )

    def list_invoices(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = (
            self.engine.reader()
            .execute(
                "SELECT invoice_id, execution_id, at, data FROM invoices ORDER BY at DESC LIMIT ?",
                (int(limit),),
            )
            .fetchall()
        )
        return [
            {"invoiceId": i, "executionId": e, "at": iso(a), "data": json.loads(d)} for i, e, a, d in rows
        ]

    def get_meta(self, key: str) -> str | None:
        row = self.engine.reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.engine.write(
            f"saving {key}",
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            ),
        )
