"""The agent's SQLite store (WAL): local tasks, received federation data, cursors.

Contract (docs/ARCHITECTURE.md, "agent: parser -> agent" and "agent: web -> agent"):

  Store(path, retention_days=7)             opens/creates, migrates (PRAGMA user_version)
  upsert_local_task(ev) -> (LocalTask, changed)   merges one lifecycle event, idempotent
  get_cursor(key) -> dict | None,  set_cursor(key, dict)
  add_log_entries([(at, level, message), ...])    raw unknown log lines, capped
  add_invoice(invoice_id, execution_id, at, data) / list_invoices(limit)
  query_federation_tasks(limit, chain_id=None, since=None) -> ([FederationTaskRow], total)
  query_federation_tasks_json(fields, limit, chain_id, since) -> (JSON array text, total)
  list_peers() -> [PeerState]
  network_stats() -> {connectedPeers, tasks24h, activeNodes, tasksCompleted24h, avgExecutionMs}
  list_local_tasks(limit, offset, status) -> ([LocalTask], total)
  local_stats() -> dict,  clear_federation() -> {"tasks": n, "peers": m}
  check_writable() -> bool,  close()

Received federation rows go through `enqueue_federation_task` / `enqueue_peer`: a writer
thread inserts them in batches (whatever is queued, up to 500 rows per transaction) so bursts
never stall the NATS loop; an idle writer stores a lone row at once (low latency).
Network statistics are kept incrementally in memory (per-minute buckets over 24 h, seeded by
one query at open), never by a full scan per request.

A failed write raises `StoreError (FED_006)` to the caller (local tasks) or is retried by
the writer (received rows, kept in memory meanwhile); nothing already stored is deleted.

Threads: one write connection behind a lock; each reading thread gets its own connection.
Times are stored as integer epoch milliseconds (UTC).
The store answers rows and model objects; the API's shapes are the web layer's (web/serializers.py).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..model import TASK_STATUSES, LocalTask, TaskEvent
from ..protocol import PEER_FORGET_S, PEER_ONLINE_S

log = logging.getLogger("monitor_agent.store")

DAY_MS = 86_400_000
MINUTE_MS = 60_000
LOG_ENTRIES_CAP = 10_000
FLUSH_ROWS = 500
WRITER_BACKLOG = 100_000
RETENTION_BATCH = 2_000
EVICT_MIN = 1_000  # rows (or peers) evicted at least per full-database event
EVICT_ATTEMPTS = 20  # evictions one write may trigger before it gives up with FED_006

# Local status precedence: a merged row never moves back to an earlier status.
# `failed` outranks `completed`: an error naming the execution is stronger evidence than
# a later "completed" line, and a non-zero exit code makes a completion a failure anyway.
STATUS_RANK = {"received": 0, "running": 1, "unknown": 2, "completed": 3, "failed": 4}
_KIND_STATUS = {"received": "received", "started": "running", "completed": "completed", "failed": "failed"}

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


# ---- time helpers ----


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(value: datetime | str | int | float | None) -> int | None:
    """Epoch ms of a datetime (naive = UTC), RFC 3339 string, or epoch seconds number."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return to_ms(datetime.fromisoformat(text))


def iso(ms: int | None) -> str | None:
    """RFC 3339 UTC, whole seconds, with a Z."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_FEDERATION_TASK_COLS = (
    "source_node, task_id, event, chain_id, block_number, task_type, status, execution_time_ms, "
    "timestamp, received_at"
)
FEED_CACHE_PAGES = 64


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


# ---- row shapes ----


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

    def online(self, now: int) -> bool:
        return self.last_event != "node_offline" and now - self.last_seen < PEER_ONLINE_S * 1000


class _Window24h:
    """Per-minute counters over the last 24 h: O(1) update, O(evicted) read."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}  # minute -> [tasks, completed, failed, exec_sum, exec_n]
        self.totals = [0, 0, 0, 0, 0]

    def add(self, minute: int, values: Iterable[int]) -> None:
        bucket = self.buckets.setdefault(minute, [0, 0, 0, 0, 0])
        for i, v in enumerate(values):
            bucket[i] += v
            self.totals[i] += v

    def evict(self, now: int) -> None:
        oldest = (now - DAY_MS) // MINUTE_MS
        stale = [m for m in self.buckets if m < oldest] if self.buckets else []
        for minute in stale:
            for i, v in enumerate(self.buckets.pop(minute)):
                self.totals[i] -= v

    def clear(self) -> None:
        self.buckets.clear()
        self.totals = [0, 0, 0, 0, 0]


def _db_error(action: str, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"database error while {action}: {exc}")


class Store:
    """SQLite store of one agent. Safe to use from any thread."""

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
        self.retention_days = retention_days
        self.on_federation_stored = on_federation_stored
        self.on_error = on_error
        # The database holds private task fields: a new data dir and file are the owner's only
        # (SQLite gives the -wal/-shm files the database file's mode).
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"database error while creating {self.path}: {exc}") from exc
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            self._wconn = self._connect()
            self._migrate()
        except sqlite3.Error as exc:
            raise _db_error(f"opening {self.path}", exc) from exc
        # In-memory views, seeded once here and kept current by the writer.
        self._stats_lock = threading.Lock()
        self._window = _Window24h()
        self._fed_total = 0
        # Rows per chain id, so `total` of a chainId-filtered page is not a COUNT(*) per request.
        self._chain_totals: dict[int, int] = {}
        # Feed pages as JSON text, valid while `_feed_generation` is unchanged (any insert or
        # delete of federation rows bumps it). Dashboards poll the same few pages.
        self._feed_generation = 0
        self._feed_cache: OrderedDict[tuple, tuple[int, str, int]] = OrderedDict()
        self._peers: dict[str, PeerState] = {}
        # key -> the one nodeId it speaks for (the reverse of the peers' pinned keys, PROTOCOL.md §3).
        self._key_nodes: dict[str, str] = {}
        self._load_memory_views()
        self.max_db_mb = max_db_mb
        self.evicted = 0
        if max_db_mb is not None:
            page_size = self._wconn.execute("PRAGMA page_size").fetchone()[0]
            self.set_max_pages(max_db_mb * 1024 * 1024 // page_size)
        # Writer thread state.
        self._queue: queue.Queue = queue.Queue(maxsize=WRITER_BACKLOG)
        self._pending: list = []  # a batch that failed to write, retried first
        self._writer_stop = threading.Event()
        self._flushed = threading.Condition()
        self._enqueued = 0
        self._written = 0
        self.duplicates = 0
        self.backlog_dropped = 0
        self.write_errors = 0
        self._writer: threading.Thread | None = None
        if start_writer:
            self.start_writer()

    # ---- connections and schema ----

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _migrate(self) -> None:
        conn = self._wconn
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

    def _load_memory_views(self) -> None:
        conn = self._wconn
        now = now_ms()
        self._fed_total = conn.execute("SELECT COUNT(*) FROM federation_tasks").fetchone()[0]
        self._chain_totals = self._count_chains(conn)
        rows = conn.execute(
            """SELECT received_at / ? AS m, SUM(first),
                      SUM(event = 'task_completed'), SUM(event = 'task_failed'),
                      SUM(CASE WHEN event = 'task_completed' THEN execution_time_ms END),
                      COUNT(CASE WHEN event = 'task_completed' THEN execution_time_ms END)
               FROM federation_tasks WHERE received_at >= ? GROUP BY m""",
            (MINUTE_MS, now - DAY_MS),
        ).fetchall()
        for minute, *values in rows:
            self._window.add(minute, (v or 0 for v in values))
        for r in conn.execute(
            "SELECT node_id, region, version, first_seen, last_seen, last_event, tasks_reported, "
            "pinned_key, stats FROM federation_peers ORDER BY first_seen, node_id"
        ):
            stats = json.loads(r[8]) if r[8] else None
            self._peers[r[0]] = PeerState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], stats)
            if r[7]:
                self._key_nodes.setdefault(r[7], r[0])  # rows from before the binding: the first wins

    @staticmethod
    def _count_chains(conn: sqlite3.Connection) -> dict[int, int]:
        # One pass over the (chain_id, received_at) index; run at open and after retention.
        return dict(
            conn.execute("SELECT chain_id, COUNT(*) FROM federation_tasks GROUP BY chain_id").fetchall()
        )

    def _write(self, action: str, fn: Callable[[sqlite3.Connection], Any], *, evict: bool = True) -> Any:
        """Run `fn` in one write transaction; FED_006 on any SQLite error (rolled back).

        A full database (the FEDERATION_MAX_DB_MB cap, or the disk) first evicts the oldest
        received federation rows and tries again: local history is never what gives way."""
        with self._write_lock:
            if self._closed:
                raise StoreError("the store is closed")
            conn = self._wconn
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
                    if evict and full and attempt < EVICT_ATTEMPTS and self._evict_for_space():
                        attempt += 1
                        continue
                    self.write_errors += 1
                    raise _db_error(action, exc) from exc

    def set_max_pages(self, pages: int) -> None:
        """Cap the database size (PRAGMA max_page_count): FEDERATION_MAX_DB_MB in pages.

        SQLite refuses to grow the file past it (a database already larger keeps its size);
        `_write` then makes room by evicting federation rows (`_evict_for_space`)."""
        with self._write_lock:
            self._wconn.execute(f"PRAGMA max_page_count={int(pages)}")

    def _evict_for_space(self) -> bool:
        """Delete the oldest tenth of the received tasks (at least EVICT_MIN rows), or when none
        are left the longest-silent tenth of the peers; False when there is nothing left to evict.
        Local tasks, cursors, invoices are never evicted. Caller holds the write lock."""
        with self._stats_lock:
            n = max(EVICT_MIN, self._fed_total // 10)
        rows = self._write(
            "evicting the oldest federation tasks",
            lambda c: c.execute(
                "DELETE FROM federation_tasks WHERE id IN (SELECT id FROM federation_tasks "
                "ORDER BY received_at LIMIT ?) "
                "RETURNING chain_id, received_at, first, event, execution_time_ms",
                (n,),
            ).fetchall(),
            evict=False,
        )
        if rows:
            now = now_ms()
            with self._stats_lock:
                self._feed_generation += 1
                self._fed_total -= len(rows)
                window = self._window.buckets
                for chain_id, received_at, first, event, exec_ms in rows:
                    left = self._chain_totals.get(chain_id, 0) - 1
                    if left > 0:
                        self._chain_totals[chain_id] = left
                    else:
                        self._chain_totals.pop(chain_id, None)
                    minute = received_at // MINUTE_MS
                    if received_at >= now - DAY_MS and minute in window:
                        completed = event == "task_completed" and exec_ms is not None
                        self._window.add(
                            minute,
                            (
                                -int(first),
                                -int(event == "task_completed"),
                                -int(event == "task_failed"),
                                -(exec_ms or 0) if completed else 0,
                                -int(completed),
                            ),
                        )
            self.evicted += len(rows)
            log.warning(
                "database at its size cap (FEDERATION_MAX_DB_MB=%s): evicted the %d oldest federation tasks",
                self.max_db_mb,
                len(rows),
            )
            return True
        with self._stats_lock:
            n = max(EVICT_MIN, len(self._peers) // 10)
        gone = self._write(
            "evicting the longest-silent peers",
            lambda c: c.execute(
                "DELETE FROM federation_peers WHERE node_id IN (SELECT node_id FROM federation_peers "
                "ORDER BY last_seen LIMIT ?) RETURNING node_id",
                (n,),
            ).fetchall(),
            evict=False,
        )
        if not gone:
            return False
        with self._stats_lock:
            self._forget_peers(r[0] for r in gone)
        log.warning(
            "database at its size cap (FEDERATION_MAX_DB_MB=%s): evicted the %d longest-silent peers",
            self.max_db_mb,
            len(gone),
        )
        return True

    def _forget_peers(self, node_ids: Iterable[str]) -> None:
        """Drop peers and their key bindings from memory (caller holds the stats lock)."""
        for node_id in node_ids:
            peer = self._peers.pop(node_id, None)
            if peer is not None and peer.pinned_key and self._key_nodes.get(peer.pinned_key) == node_id:
                del self._key_nodes[peer.pinned_key]

    # ---- local tasks ----

    def get_local_task(self, execution_id: str) -> LocalTask | None:
        row = (
            self._reader()
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

        return self._write(f"storing local task {ev.execution_id}", merge)

    def list_local_tasks(
        self,
        limit: int = 100,
        offset: int = 0,
        status: str | None = None,
    ) -> tuple[list[LocalTask], int]:
        """Newest first; `total` counts every row with that status (all rows without one)."""
        conn = self._reader()
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        total = conn.execute(f"SELECT COUNT(*) FROM tasks {where}", params).fetchone()[0]  # noqa: S608 - fixed column lists, values bound
        rows = conn.execute(
            f"SELECT {_LOCAL_COLS} FROM tasks {where} ORDER BY first_seen DESC, rowid DESC LIMIT ? OFFSET ?",  # noqa: S608 - fixed column lists, values bound
            (*params, int(limit), int(offset)),
        ).fetchall()
        return [_local_task(r) for r in rows], total

    def local_stats(self) -> dict[str, Any]:
        """Counts of the local node's own tasks (all time, by status, and the last 24 h)."""
        conn = self._reader()
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

    # ---- cursors, raw log lines, invoices ----

    def get_cursor(self, key: str) -> dict | None:
        row = self._reader().execute("SELECT value FROM cursors WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_cursor(self, key: str, value: dict) -> None:
        text = json.dumps(value, sort_keys=True)
        self._write(
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

        return self._write("storing log entries", add)

    def list_log_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = (
            self._reader()
            .execute("SELECT at, level, message FROM log_entries ORDER BY id DESC LIMIT ?", (int(limit),))
            .fetchall()
        )
        return [{"at": iso(a), "level": lv, "message": m} for a, lv, m in rows]

    def add_invoice(self, invoice_id: str, execution_id: str | None, at: Any, data: dict) -> None:
        self._write(
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
            self._reader()
            .execute(
                "SELECT invoice_id, execution_id, at, data FROM invoices ORDER BY at DESC LIMIT ?",
                (int(limit),),
            )
            .fetchall()
        )
        return [
            {"invoiceId": i, "executionId": e, "at": iso(a), "data": json.loads(d)} for i, e, a, d in rows
        ]

    # ---- federation: writes through the batch writer ----

    def enqueue_federation_task(self, row: FederationTaskRow) -> bool:
        """Queue a received task row for the writer; False (counted) if the backlog is full."""
        try:
            self._queue.put_nowait(("task", row))
        except queue.Full:
            self.backlog_dropped += 1
            return False
        self._enqueued += 1
        return True

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
        with self._stats_lock:
            peer = self._peers.get(node_id)
            if peer is None:
                peer = self._peers[node_id] = PeerState(
                    node_id,
                    region or "UNKNOWN",
                    version,
                    at_ms,
                    at_ms,
                    event,
                    tasks_reported or 0,
                    pinned_key,
                )
                if pinned_key is not None:
                    self._key_nodes.setdefault(pinned_key, node_id)
            else:
                peer.last_seen = max(peer.last_seen, at_ms)
                if event is not None:
                    peer.last_event = event
                if region is not None:
                    peer.region = region
                if version is not None:
                    peer.version = version
                if tasks_reported is not None:
                    peer.tasks_reported = tasks_reported
                if pinned_key is not None and peer.pinned_key is None:
                    peer.pinned_key = pinned_key
                    self._key_nodes.setdefault(pinned_key, node_id)
            if stats is not None:
                peer.stats = stats
        try:
            self._queue.put_nowait(("peer", node_id))
        except queue.Full:
            self.backlog_dropped += 1
            return
        self._enqueued += 1

    def pinned_key(self, node_id: str) -> str | None:
        """The key first seen for `node_id` (trust on first use), kept for the retention window."""
        with self._stats_lock:
            peer = self._peers.get(node_id)
            return None if peer is None else peer.pinned_key

    def last_federation_received_at(self) -> int | None:
        """When the newest stored federation task event arrived (epoch ms; None: none stored)."""
        row = self._reader().execute("SELECT MAX(received_at) FROM federation_tasks").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def node_for_key(self, key: str) -> str | None:
        """The one nodeId `key` was first seen speaking for (kept as long as that peer's pin)."""
        with self._stats_lock:
            return self._key_nodes.get(key)

    def has_federation_task(self, node_id: str, task_id: str, event: str) -> bool:
        """Whether that task event is stored (one look-up in the unique index)."""
        row = (
            self._reader()
            .execute(
                "SELECT 1 FROM federation_tasks WHERE source_node = ? AND task_id = ? AND event = ?",
                (node_id, task_id, event),
            )
            .fetchone()
        )
        return row is not None


    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            f"saving {key}",
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            ),
        )

    def pinned_keys(self) -> dict[str, str]:
        with self._stats_lock:
            return {p.node_id: p.pinned_key for p in self._peers.values() if p.pinned_key}

    def start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._writer_loop, name="store-writer", daemon=True)
            self._writer.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (True) or `timeout` passes (False)."""
        target = self._enqueued
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._writer is None or not self._writer.is_alive():
                    return self._written >= target
                self._flushed.wait(remaining)
        return True

    def _writer_loop(self) -> None:
        backoff = 0.5
        last_retention = time.monotonic()
        while True:
            batch = self._pending
            if not batch:
                try:
                    batch = [self._queue.get(timeout=0.25)]
                except queue.Empty:
                    batch = []
                # Greedy batching: take what is already queued (up to FLUSH_ROWS) and write it now.
                # An idle store writes one row at once (low latency); under a burst the rows that
                # pile up during one write form the next batch, so batches grow with the load.
                while batch and len(batch) < FLUSH_ROWS:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            batch = [item for item in batch if item[0] != "stop"]
            if batch:
                try:
                    self._write_batch(batch)
                except StoreError as exc:
                    self._pending = batch
                    self._report(exc)
                    if self._writer_stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._pending = []
                backoff = 0.5
                with self._flushed:
                    self._written += len(batch)
                    self._flushed.notify_all()
            elif self._writer_stop.is_set():
                return
            if time.monotonic() - last_retention > 60:
                last_retention = time.monotonic()
                try:
                    self.run_retention()
                except StoreError as exc:
                    self._report(exc)

    def _report(self, exc: StoreError) -> None:
        log.error("%s", exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:  # a broken callback must not kill the writer
                log.exception("store error callback failed")

    def _write_batch(self, batch: list) -> None:
        stored: list[tuple[FederationTaskRow, bool]] = []
        peer_ids: set[str] = set()
        counted = [False]

        def write(conn: sqlite3.Connection) -> None:
            if counted[0]:  # a retry after evicting for space: undo the failed attempt's counts
                self._uncount_peer_tasks(stored)
            stored.clear()
            counted[0] = False
            for kind, item in batch:
                if kind == "peer":
                    peer_ids.add(item)
                    continue
                row: FederationTaskRow = item
                # One statement per row: whether this is the task's first event comes from the
                # subquery and back through RETURNING (nothing returned: a duplicate, ignored).
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO federation_tasks (source_node, task_id, event, chain_id, "
                    "block_number, task_type, status, execution_time_ms, timestamp, received_at, first) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM federation_tasks "
                    "WHERE source_node = ?1 AND task_id = ?2)) RETURNING first",
                    (
                        row.source_node,
                        row.task_id,
                        row.event,
                        row.chain_id,
                        row.block_number,
                        row.task_type,
                        row.status,
                        row.execution_time_ms,
                        row.timestamp,
                        row.received_at,
                    ),
                ).fetchone()
                if inserted is not None:
                    stored.append((row, bool(inserted[0])))
            if stored or peer_ids:
                self._count_peer_tasks(stored)
                counted[0] = True
                with self._stats_lock:
                    peers = [self._peers[n] for n in peer_ids if n in self._peers]
                    peers += [
                        self._peers[r.source_node] for r, f in stored if f and r.source_node in self._peers
                    ]
                    snap = {
                        p.node_id: (
                            p.node_id,
                            p.region,
                            p.version,
                            p.first_seen,
                            p.last_seen,
                            p.last_event,
                            p.tasks_reported,
                            p.pinned_key,
                            json.dumps(p.stats) if p.stats is not None else None,
                        )
                        for p in peers
                    }
                conn.executemany(
                    "INSERT INTO federation_peers (node_id, region, version, first_seen, last_seen, last_event, "
                    "tasks_reported, pinned_key, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(node_id) DO UPDATE SET region = excluded.region, version = excluded.version, "
                    "last_seen = excluded.last_seen, last_event = excluded.last_event, "
                    "tasks_reported = excluded.tasks_reported, "
                    "pinned_key = COALESCE(federation_peers.pinned_key, excluded.pinned_key), "
                    "stats = excluded.stats",
                    list(snap.values()),
                )

        # The write lock spans the insert and the in-memory counters, so a recount after retention
        # never sees rows whose counters are not yet added (or the reverse).
        with self._write_lock:
            try:
                self._write("storing received federation data", write)
            except StoreError:
                if counted[0]:
                    self._uncount_peer_tasks(stored)
                raise
            task_rows = sum(1 for kind, _ in batch if kind == "task")
            self.duplicates += task_rows - len(stored)
            self._count_stored(stored)
        if stored:
            if self.on_federation_stored is not None:
                try:
                    self.on_federation_stored([r for r, _ in stored])
                except Exception:
                    log.exception("federation stored callback failed")

    def _count_stored(self, stored: list) -> None:
        if stored:
            with self._stats_lock:
                self._feed_generation += 1
                self._fed_total += len(stored)
                for row, first in stored:
                    self._chain_totals[row.chain_id] = self._chain_totals.get(row.chain_id, 0) + 1
                    completed = row.event == "task_completed"
                    exec_ms = (
                        row.execution_time_ms if completed and row.execution_time_ms is not None else None
                    )
                    self._window.add(
                        row.received_at // MINUTE_MS,
                        (
                            int(first),
                            int(completed),
                            int(row.event == "task_failed"),
                            exec_ms or 0,
                            int(exec_ms is not None),
                        ),
                    )

    def _count_peer_tasks(self, stored: list) -> None:
        # A new task from a peer raises its reported count until its next presence message says otherwise.
        with self._stats_lock:
            for row, first in stored:
                peer = self._peers.get(row.source_node)
                if first and peer is not None:
                    peer.tasks_reported += 1

    def _uncount_peer_tasks(self, stored: list) -> None:
        with self._stats_lock:
            for row, first in stored:
                peer = self._peers.get(row.source_node)
                if first and peer is not None:
                    peer.tasks_reported -= 1

    # ---- federation: queries ----

    def _federation_filter(self, chain_id: int | None, since: Any) -> tuple[str, list, int]:
        """WHERE clause, its parameters and the matching total for the global feed's filters."""
        clauses, params = [], []
        if chain_id is not None:
            clauses.append("chain_id = ?")
            params.append(int(chain_id))
        since_ms = to_ms(since)
        if since_ms is not None:
            clauses.append("received_at > ?")
            params.append(since_ms)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        if since_ms is not None:
            total = (
                self._reader()
                .execute(f"SELECT COUNT(*) FROM federation_tasks {where}", params)  # noqa: S608 - fixed clauses, values bound
                .fetchone()[0]
            )
        elif chain_id is not None:
            with self._stats_lock:
                total = self._chain_totals.get(int(chain_id), 0)
        else:
            total = self._fed_total
        return where, params, total

    def query_federation_tasks(
        self, limit: int = 100, chain_id: int | None = None, since: Any = None
    ) -> tuple[list[FederationTaskRow], int]:
        """Newest first; `total` counts every row matching the filters (PROTOCOL.md §6)."""
        where, params, total = self._federation_filter(chain_id, since)
        rows = (
            self._reader()
            .execute(
                f"SELECT {_FEDERATION_TASK_COLS} FROM federation_tasks {where} "  # noqa: S608 - fixed columns, values bound
                "ORDER BY received_at DESC, id DESC LIMIT ?",
                (*params, int(limit)),
            )
            .fetchall()
        )
        return [FederationTaskRow(*r) for r in rows], total

    def query_federation_tasks_json(
        self,
        fields: tuple[tuple[str, str], ...],
        limit: int = 100,
        chain_id: int | None = None,
        since: Any = None,
    ) -> tuple[str, int]:
        """The same page as `query_federation_tasks`, as a JSON array text built by SQLite: one
        object per row with the (key, SQL expression over the columns) `fields` the caller
        shapes it with (the web layer's feed shape).

        The API's hot path: the page becomes JSON inside SQLite (C) in one step. One step
        matters as much as the C: the sqlite3 module releases the GIL around every step, and in
        a busy threaded server each re-acquire can wait a whole switch interval, so a row-by-row
        fetch of 100 rows costs milliseconds. The aggregate reads the LIMITed subquery, which
        SQLite runs as a co-routine in its ORDER BY order (a test holds it to the row query).
        """
        key = (fields, int(limit), chain_id, to_ms(since))
        with self._stats_lock:
            generation = self._feed_generation
            hit = self._feed_cache.get(key)
            if hit is not None and hit[0] == generation:
                self._feed_cache.move_to_end(key)
                return hit[1], hit[2]
        where, params, total = self._federation_filter(chain_id, since)
        pairs = ", ".join(f"'{k}', {expr}" for k, expr in fields)
        (text,) = (
            self._reader()
            .execute(
                f"SELECT json_group_array(json(j)) FROM (SELECT json_object({pairs}) AS j "  # noqa: S608 - fixed columns, values bound
                f"FROM federation_tasks {where} ORDER BY received_at DESC, id DESC LIMIT ?)",
                (*params, int(limit)),
            )
            .fetchone()
        )
        with self._stats_lock:
            self._feed_cache[key] = (generation, text, total)
            self._feed_cache.move_to_end(key)
            while len(self._feed_cache) > FEED_CACHE_PAGES:
                self._feed_cache.popitem(last=False)
        return text, total

    def read(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """A read-only query on this thread's connection, for modules that own their queries."""
        return self._reader().execute(sql, params)

    def list_peers(self) -> list[PeerState]:
        """Peers heard from in the last 10 minutes, most recent first (copies: the writer updates
        its own)."""
        horizon = now_ms() - PEER_FORGET_S * 1000
        with self._stats_lock:
            peers = [replace(p) for p in self._peers.values() if p.last_seen >= horizon]
        return sorted(peers, key=lambda p: (-p.last_seen, p.node_id))

    def network_stats(self) -> dict[str, Any]:
        now = now_ms()
        with self._stats_lock:
            self._window.evict(now)
            tasks, completed, failed, exec_sum, exec_n = self._window.totals
            online = sum(1 for p in self._peers.values() if p.online(now))
            active = sum(1 for p in self._peers.values() if now - p.last_seen < DAY_MS)
        return {
            "connectedPeers": online,
            "tasks24h": tasks,
            "activeNodes": active,
            "tasksCompleted24h": completed,
            "tasksFailed24h": failed,
            "avgExecutionMs": round(exec_sum / exec_n) if exec_n else None,
        }

    def federation_counts(self) -> dict[str, int]:
        with self._stats_lock:
            return {"tasks": self._fed_total, "peers": len(self._peers)}

    def clear_federation(self) -> dict[str, int]:
        """Delete every received task and peer (right to erasure); answers the counts deleted."""
        self.flush(timeout=2.0)

        def clear(conn: sqlite3.Connection) -> dict[str, int]:
            tasks = conn.execute("DELETE FROM federation_tasks").rowcount
            peers = conn.execute("DELETE FROM federation_peers").rowcount
            return {"tasks": tasks, "peers": peers}

        with self._write_lock:
            counts = self._write("clearing federation data", clear)
            with self._stats_lock:
                self._feed_generation += 1
                self._fed_total = 0
                self._chain_totals.clear()
                self._window.clear()
                self._peers.clear()
                self._key_nodes.clear()
        return counts

    def run_retention(self, now: int | None = None) -> dict[str, int]:
        """Delete received rows and peers older than the retention window, in small batches."""
        now = now_ms() if now is None else now
        cutoff = now - self.retention_days * DAY_MS
        deleted_tasks = 0
        while True:
            n = self._write(
                "deleting expired federation tasks",
                lambda c: (
                    c.execute(
                        "DELETE FROM federation_tasks WHERE id IN (SELECT id FROM federation_tasks "
                        "WHERE received_at < ? LIMIT ?)",
                        (cutoff, RETENTION_BATCH),
                    ).rowcount
                ),
            )
            deleted_tasks += n
            with self._stats_lock:
                self._feed_generation += 1
                self._fed_total -= n
            if n < RETENTION_BATCH:
                break
            time.sleep(0.01)  # let other writers in between batches
        if deleted_tasks:
            with self._write_lock:
                chains = self._count_chains(self._wconn)
            with self._stats_lock:
                self._chain_totals = chains
        deleted_peers = self._write(
            "deleting expired peers",
            lambda c: c.execute("DELETE FROM federation_peers WHERE last_seen < ?", (cutoff,)).rowcount,
        )
        with self._stats_lock:
            self._forget_peers([n for n, p in self._peers.items() if p.last_seen < cutoff])
        if deleted_tasks or deleted_peers:
            log.info("retention: deleted %d federation tasks and %d peers", deleted_tasks, deleted_peers)
        return {"tasks": deleted_tasks, "peers": deleted_peers}

    # ---- health and shutdown ----

    def check_writable(self) -> bool:
        """True when a real write to the database succeeds right now."""
        try:
            self._write(
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

    @property
    def writer_backlog(self) -> int:
        return self._queue.qsize() + len(self._pending)

    def close(self, timeout: float = 5.0) -> None:
        """Flush the writer (up to `timeout`), then close every connection."""
        if self._closed:
            return
        if self._writer is not None:
            self.flush(timeout)
            self._writer_stop.set()
            try:
                self._queue.put_nowait(("stop", None))  # wake the writer now, not at its next poll
            except queue.Full:
                pass
            self._writer.join(timeout)
        with self._write_lock:
            self._closed = True
            try:
                self._wconn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self._wconn.close()
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- local task merging (pure) ----

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
        received_at=_dt(row[2]),
        started_at=_dt(row[3]),
        finished_at=_dt(row[4]),
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


def _utc(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    # Stored with ms precision: round here so a re-delivered event compares equal to the stored row.
    return datetime.fromtimestamp(to_ms(at) / 1000, UTC)


def merge_event(old: LocalTask | None, ev: TaskEvent) -> LocalTask:
    """The row after applying `ev` to `old` (pure; applying the same event twice is a no-op)."""
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
    status = _KIND_STATUS.get(ev.kind, "unknown")
    if ev.kind == "completed" and ev.exit_code not in (None, 0):
        status = "failed"
    if ev.kind == "received":
        t.received_at = at if t.received_at is None else min(t.received_at, at)
    elif ev.kind == "started":
        t.started_at = at if t.started_at is None else min(t.started_at, at)
    else:
        t.finished_at = at if t.finished_at is None else max(t.finished_at, at)
    # Facts fill in; a later event with a value overrides an earlier one (metrics arrive last).
    for name in (
        "chain_id",
        "block_number",
        "task_type",
        "execution_time_ms",
        "exit_code",
        "steps",
        "memory_peak",
    ):
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
