"""`Store`: the agent's one SQLite store, put together from the parts of this package."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from ..errors import StoreError
from .engine import Engine
from .federation import FederationRows
from .feed import FeedCache
from .local import LocalTasks
from .records import LocalRecords
from .retention import Retention
from .rows import FederationTaskRow
from .stats import FederationStats
from .times import now_ms
from .writer import BatchWriter


class Store(LocalTasks, LocalRecords, FederationRows):
    """SQLite store of one agent (contract: the package docstring). Safe to use from any thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: int = 7,
        max_db_mb: int | None = None,
        on_federation_stored: Callable[[list[FederationTaskRow]], None] | None = None,
        on_error: Callable[[StoreError], None] | None = None,
        start_writer: bool = True,
    ):
        self.path = Path(path)
        self.engine = Engine(self.path)
        # In-memory views, seeded once here and kept current by the writer and the retention.
        self.stats = FederationStats()
        self.stats.load(self.engine.conn, now_ms())
        self.feed = FeedCache()
        self.retention = Retention(
            self.engine, self.stats, self.feed, retention_days=retention_days, max_db_mb=max_db_mb
        )
        self.engine.make_room = self.retention.make_room
        self.writer = BatchWriter(
            self.engine,
            self.stats,
            self.feed,
            on_stored=on_federation_stored,
            on_error=on_error,
            every_minute=self.retention.run,
        )
        if start_writer:
            self.writer.start()

    # ---- received federation rows: through the batch writer ----

    def enqueue_federation_task(self, row: FederationTaskRow) -> bool:
        """Queue a received task row for the writer; False (counted) if the backlog is full."""
        return self.writer.enqueue("task", row)

    def enqueue_peer(
        self,
        node_id: str,
        at_ms: int,
        *,
        event: str | None = None,
        region: str | None = None,
        version: str | None = None,
        tasks_reported: int | None = None,
        pinned_key: str | None = None,
        stats: dict | None = None,
    ) -> None:
        """Record that a peer was heard from; the in-memory view updates at once, the row in the next batch."""
        self.stats.heard(
            node_id, at_ms, event=event, region=region, version=version, tasks_reported=tasks_reported,
            pinned_key=pinned_key, stats=stats,
        )  # fmt: skip
        self.writer.enqueue("peer", node_id)

    def start_writer(self) -> None:
        self.writer.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (True) or `timeout` passes (False)."""
        return self.writer.flush(timeout)

    @property
    def writer_backlog(self) -> int:
        return self.writer.backlog

    @property
    def duplicates(self) -> int:
        return self.writer.duplicates

    @property
    def backlog_dropped(self) -> int:
        return self.writer.backlog_dropped

    # ---- what gives way ----

    def run_retention(self, now: int | None = None) -> dict[str, int]:
        """Delete received rows and peers older than the retention window, in small batches."""
        return self.retention.run(now)

    def set_max_pages(self, pages: int) -> None:
        """Cap the database size (PRAGMA max_page_count): FEDERATION_MAX_DB_MB in pages; a full
        database then makes room by evicting received rows (retention.py)."""
        self.engine.set_max_pages(pages)

    @property
    def retention_days(self) -> int:
        return self.retention.retention_days

    @property
    def max_db_mb(self) -> int | None:
        return self.retention.max_db_mb

    @property
    def evicted(self) -> int:
        return self.retention.evicted

    @property
    def write_errors(self) -> int:
        return self.engine.write_errors

    def clear_federation(self) -> dict[str, int]:
        """Delete every received task and peer (right to erasure); answers the counts deleted."""
        self.flush(timeout=2.0)

        def clear(conn: sqlite3.Connection) -> dict[str, int]:
            tasks = conn.execute("DELETE FROM federation_tasks").rowcount
            peers = conn.execute("DELETE FROM federation_peers").rowcount
            return {"tasks": tasks, "peers": peers}

        with self.engine.lock:
            counts = self.engine.write("clearing federation data", clear)
            self.stats.clear()
            self.feed.invalidate()
        return counts

    # ---- health and shutdown ----

    def check_writable(self) -> bool:
        """True when a real write to the database succeeds right now."""
        try:
            self.engine.write(
                "checking the database",
                lambda c: c.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_write_check', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(now_ms()),),
                ),
            )
            return True
        except StoreError:
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Flush the writer (up to `timeout`), then close every connection."""
        if self.engine.closed:
            return
        self.writer.stop(timeout)
        self.engine.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
