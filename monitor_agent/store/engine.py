"""The database file and its connections: private creation, WAL, schema migrations, transactions.

One write connection behind a lock; each reading thread gets its own read-only connection.
`Engine.write` runs a function in one write transaction and turns any SQLite error into
`StoreError` (FED_006 to the operator), after first letting the `make_room` callback (the
store's eviction, see retention.py) free space when the database is full (the
FEDERATION_MAX_DB_MB cap, or the disk).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import StoreError

log = logging.getLogger("monitor_agent.store")

EVICT_ATTEMPTS = 20  # evictions one write may trigger before it gives up with FED_006

MIGRATIONS: tuple[str, ...] = (
    # v1
    """
    CREATE TABLE tasks (
        execution_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        received_at INTEGER, started_at INTEGER, finished_at INTEGER,
        chain_id INTEGER, block_number INTEGER, task_type TEXT,
        execution_time_ms INTEGER, exit_code INTEGER, steps INTEGER, memory_peak INTEGER,
        cached INTEGER,
        private TEXT NOT NULL DEFAULT '{}',
        first_seen INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX tasks_first_seen ON tasks(first_seen DESC);
    CREATE INDEX tasks_status_first_seen ON tasks(status, first_seen DESC);

    CREATE TABLE federation_tasks (
        id INTEGER PRIMARY KEY,
        source_node TEXT NOT NULL,
        task_id TEXT NOT NULL,
        event TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        block_number INTEGER,
        task_type TEXT NOT NULL,
        status TEXT NOT NULL,
        execution_time_ms INTEGER,
        timestamp TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        first INTEGER NOT NULL DEFAULT 1,
        UNIQUE (source_node, task_id, event)
    );
    CREATE INDEX federation_tasks_received ON federation_tasks(received_at DESC);
    CREATE INDEX federation_tasks_chain ON federation_tasks(chain_id, received_at DESC);

    CREATE TABLE federation_peers (
        node_id TEXT PRIMARY KEY,
        region TEXT NOT NULL DEFAULT 'UNKNOWN',
        version TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        last_event TEXT,
        tasks_reported INTEGER NOT NULL DEFAULT 0,
        pinned_key TEXT,
        stats TEXT
    );
    CREATE INDEX federation_peers_last_seen ON federation_peers(last_seen);

    CREATE TABLE cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);

    CREATE TABLE log_entries (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );

    CREATE TABLE invoices (
        invoice_id TEXT PRIMARY KEY,
        execution_id TEXT,
        at INTEGER NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX invoices_at ON invoices(at DESC);

    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def db_error(action: str, exc: sqlite3.Error | OSError) -> StoreError:
    return StoreError(f"database error while {action}: {exc}")


class Engine:
    """One agent database: opened (created 0600, migrated) here, closed by `close`. Thread-safe."""

    def __init__(self, path: Path):
        self.path = path
        # The database holds private task fields: a new data dir and file are the owner's only
        # (SQLite gives the -wal/-shm files the database file's mode).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise db_error(f"creating {path}", exc) from exc
        self.lock = threading.RLock()  # the write connection's; held across a write and its counters
        self.closed = False
        self.write_errors = 0
        # Frees space when a write finds the database full (True: something was freed, try again).
        self.make_room: Callable[[], bool] | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        try:
            self.conn = self._connect()
            self._migrate()
        except sqlite3.Error as exc:
            raise db_error(f"opening {path}", exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _migrate(self) -> None:
        conn = self.conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this agent's ({SCHEMA_VERSION}); upgrade the agent"
            )
        for number in range(version, SCHEMA_VERSION):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("store %s migrated to schema v%d", self.path, number + 1)

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        if self.closed:
            raise StoreError("the store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def write(self, action: str, fn: Callable[[sqlite3.Connection], Any], *, evict: bool = True) -> Any:
        """Run `fn` in one write transaction; `StoreError` on any SQLite error (rolled back).

        When the database is full, `make_room()` is asked to free space and the transaction is
        tried again, up to EVICT_ATTEMPTS times, while it answers True (not with `evict=False`:
        the eviction's own deletes)."""
        with self.lock:
            if self.closed:
                raise StoreError("the store is closed")
            conn = self.conn
            attempt = 0
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.Error as exc:
                    full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                    make_room = self.make_room if evict and full and attempt < EVICT_ATTEMPTS else None
                    if make_room is not None and make_room():
                        attempt += 1
                        continue
                    self.write_errors += 1
                    raise db_error(action, exc) from exc

    def set_max_pages(self, pages: int) -> None:
        """Cap the database size (PRAGMA max_page_count); a database already larger keeps its size."""
        with self.lock:
            self.conn.execute(f"PRAGMA max_page_count={int(pages)}")

    def page_size(self) -> int:
        with self.lock:
            return int(self.conn.execute("PRAGMA page_size").fetchone()[0])

    def close(self) -> None:
        """Close every connection (the write connection after `PRAGMA optimize`)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                self.conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self.conn.close()
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
