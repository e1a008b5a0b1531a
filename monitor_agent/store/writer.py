"""The batch writer: one thread that stores received federation rows and peers in batches.

Callers (the NATS loop) only enqueue, so a burst never stalls them: the thread inserts whatever
is queued (up to FLUSH_ROWS rows per transaction); an idle writer stores a lone row at once (low
latency). A batch that fails is kept and retried first (backoff up to 5 s), and reported through
`on_error`; nothing queued is dropped unless the backlog (WRITER_BACKLOG) is full (counted).
Once a minute the thread also runs `every_minute` (the store's retention).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

from ..errors import StoreError
from .engine import Engine
from .feed import FeedCache
from .rows import FederationTaskRow
from .stats import FederationStats

log = logging.getLogger("monitor_agent.store")

FLUSH_ROWS = 500
WRITER_BACKLOG = 100_000

_INSERT_TASK = (
    # One statement per row: whether this is the task's first event comes from the subquery and
    # back through RETURNING (nothing returned: a duplicate, ignored).
    "INSERT OR IGNORE INTO federation_tasks (source_node, task_id, event, chain_id, "
    "block_number, task_type, status, execution_time_ms, timestamp, received_at, first) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM federation_tasks "
    "WHERE source_node = ?1 AND task_id = ?2)) RETURNING first"
)
_UPSERT_PEER = (
    "INSERT INTO federation_peers (node_id, region, version, first_seen, last_seen, last_event, "
    "tasks_reported, pinned_key, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(node_id) DO UPDATE SET region = excluded.region, version = excluded.version, "
    "last_seen = excluded.last_seen, last_event = excluded.last_event, "
    "tasks_reported = excluded.tasks_reported, "
    "pinned_key = COALESCE(federation_peers.pinned_key, excluded.pinned_key), "
    "stats = excluded.stats"
)


class BatchWriter:
    """The queue and thread that store received rows (`Store` owns one)."""

    def __init__(
        self,
        engine: Engine,
        stats: FederationStats,
        feed: FeedCache,
        *,
        on_stored: Callable[[list[FederationTaskRow]], None] | None = None,
        on_error: Callable[[StoreError], None] | None = None,
        every_minute: Callable[[], object] | None = None,
    ):
        self.engine = engine
        self.stats = stats
        self.feed = feed
        self.on_stored = on_stored
        self.on_error = on_error
        self.every_minute = every_minute
        self._queue: queue.Queue = queue.Queue(maxsize=WRITER_BACKLOG)
        self._pending: list = []  # a batch that failed to write, retried first
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._enqueued = 0
        self._written = 0
        self.duplicates = 0
        self.backlog_dropped = 0
        self._thread: threading.Thread | None = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._pending)

    def enqueue(self, kind: str, item: FederationTaskRow | str) -> bool:
        """Queue a task row ("task") or a peer id whose in-memory state changed ("peer");
        False (counted) if the backlog is full."""
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            self.backlog_dropped += 1
            return False
        self._enqueued += 1
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (True) or `timeout` passes (False)."""
        target = self._enqueued
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return self._written >= target
                self._flushed.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Flush (up to `timeout`), then stop the thread."""
        if self._thread is None:
            return
        self.flush(timeout)
        self._stop.set()
        try:
            self._queue.put_nowait(("stop", None))  # wake the writer now, not at its next poll
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = 0.5
        last_minute = time.monotonic()
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
                    if self._stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._pending = []
                backoff = 0.5
                with self._flushed:
                    self._written += len(batch)
                    self._flushed.notify_all()
            elif self._stop.is_set():
                return
            if self.every_minute is not None and time.monotonic() - last_minute > 60:
                last_minute = time.monotonic()
                try:
                    self.every_minute()
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
        stats = self.stats

        def count(sign: int) -> None:
            stats.count_peer_tasks(stored, sign)
            stats.count_stored(stored, sign)

        def write(conn: sqlite3.Connection) -> None:
            if counted[0]:  # a retry after evicting for space: undo the failed attempt's counts
                count(-1)
            stored.clear()
            counted[0] = False
            for kind, item in batch:
                if kind == "peer":
                    peer_ids.add(item)
                    continue
                row: FederationTaskRow = item
                inserted = conn.execute(
                    _INSERT_TASK,
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
                # Counted before the commit: a reader that sees these rows reads a total that
                # already holds them (it reads the total after the rows, `FederationRows`).
                count(1)
                counted[0] = True
                with stats.lock:
                    peers = [stats.peers[n] for n in peer_ids if n in stats.peers]
                    peers += [
                        stats.peers[r.source_node] for r, f in stored if f and r.source_node in stats.peers
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
                conn.executemany(_UPSERT_PEER, list(snap.values()))

        # The write lock spans the insert and the in-memory counters, so a recount after retention
        # never sees rows whose counters are not yet added (or the reverse).
        with self.engine.lock:
            try:
                self.engine.write("storing received federation data", write)
            except StoreError:
                if counted[0]:
                    count(-1)
                raise
            task_rows = sum(1 for kind, _ in batch if kind == "task")
            self.duplicates += task_rows - len(stored)
            if stored:
                self.feed.invalidate()  # after the commit: a page cached from now on has the rows
        if stored and self.on_stored is not None:
            try:
                self.on_stored([r for r, _ in stored])
            except Exception:
                log.exception("federation stored callback failed")
