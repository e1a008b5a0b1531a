"""What gives way, and when: the retention window, and room made when the database is full.

Only received federation data ever goes: rows older than the retention window (every minute,
in small batches), and, when a write finds the database full (the FEDERATION_MAX_DB_MB cap, or
the disk), the oldest tenth of the received rows, or with none left the longest-silent tenth of
the peers. Local tasks, cursors and invoices are never deleted here.
"""

from __future__ import annotations

import logging
import time

from .engine import Engine
from .feed import FeedCache
from .stats import FederationStats, count_chains
from .times import DAY_MS, now_ms

log = logging.getLogger("monitor_agent.store")

RETENTION_BATCH = 2_000
EVICT_MIN = 1_000  # rows (or peers) evicted at least per full-database event


class Retention:
    """The retention window and the eviction for space of one store (`Store` owns one)."""

    def __init__(self, engine: Engine, stats: FederationStats, feed: FeedCache, *, retention_days: int,
                 max_db_mb: int | None):  # fmt: skip
        self.engine = engine
        self.stats = stats
        self.feed = feed
        self.retention_days = retention_days
        self.max_db_mb = max_db_mb
        self.evicted = 0
        if max_db_mb is not None:
            engine.set_max_pages(max_db_mb * 1024 * 1024 // engine.page_size())

    def run(self, now: int | None = None) -> dict[str, int]:
        """Delete received rows and peers older than the retention window, in small batches."""
        now = now_ms() if now is None else now
        cutoff = now - self.retention_days * DAY_MS
        stats = self.stats
        deleted_tasks = 0
        while True:
            n = self.engine.write(
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
            with stats.lock:
                stats.total -= n
            self.feed.invalidate()
            if n < RETENTION_BATCH:
                break
            time.sleep(0.01)  # let other writers in between batches
        if deleted_tasks:
            with self.engine.lock:
                chains = count_chains(self.engine.conn)
            with stats.lock:
                stats.chain_totals = chains
        deleted_peers = self.engine.write(
            "deleting expired peers",
            lambda c: c.execute("DELETE FROM federation_peers WHERE last_seen < ?", (cutoff,)).rowcount,
        )
        with stats.lock:
            stats.forget_peers([n for n, p in stats.peers.items() if p.last_seen < cutoff])
        if deleted_tasks or deleted_peers:
            log.info("retention: deleted %d federation tasks and %d peers", deleted_tasks, deleted_peers)
        return {"tasks": deleted_tasks, "peers": deleted_peers}

    def make_room(self) -> bool:
        """Delete the oldest tenth of the received tasks (at least EVICT_MIN rows), or when none
        are left the longest-silent tenth of the peers; False when there is nothing left to evict.
        Called by `Engine.write` (which holds the write lock) when the database is full."""
        stats = self.stats
        with stats.lock:
            n = max(EVICT_MIN, stats.total // 10)
        rows = self.engine.write(
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
            stats.uncount_evicted(rows, now_ms())
            self.feed.invalidate()
            self.evicted += len(rows)
            log.warning(
                "database at its size cap (FEDERATION_MAX_DB_MB=%s): evicted the %d oldest federation tasks",
                self.max_db_mb,
                len(rows),
            )
            return True
        with stats.lock:
            n = max(EVICT_MIN, len(stats.peers) // 10)
        gone = self.engine.write(
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
        with stats.lock:
            stats.forget_peers(r[0] for r in gone)
        log.warning(
            "database at its size cap (FEDERATION_MAX_DB_MB=%s): evicted the %d longest-silent peers",
            self.max_db_mb,
            len(gone),
        )
        return True
