"""SQLite history of the console: one row per seed per sample, and alerts with first-seen times.

WAL mode, one connection per thread, explicit indexes for the two queries that matter (a seed's
metric over a window, open alerts). Samples older than `history_days` are pruned.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

# Metrics kept per sample; the history API accepts exactly these names.
METRICS = (
    "connections", "in_msgs_per_s", "out_msgs_per_s", "mem_bytes", "cpu_percent", "slow_consumers",
    "routes_live", "status",
)  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    server TEXT NOT NULL,
    ts REAL NOT NULL,
    up INTEGER NOT NULL,
    status INTEGER NOT NULL,
    connections INTEGER,
    max_connections INTEGER,
    in_msgs_per_s REAL,
    out_msgs_per_s REAL,
    mem_bytes INTEGER,
    cpu_percent REAL,
    slow_consumers INTEGER,
    routes_live INTEGER,
    routes_expected INTEGER
);
CREATE INDEX IF NOT EXISTS samples_server_ts ON samples (server, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    server TEXT NOT NULL,
    check_name TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    resolved_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (server, check_name) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (last_seen);
"""


class History:
    """The console's database; safe to share between the sampler thread and request threads."""

    def __init__(self, path: Path | str, retention_days: int = 7):
        self.path = str(path)
        self.retention_s = retention_days * 86400
        self._local = threading.local()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(SCHEMA)
        self.close()  # the creating thread (or a process about to fork) keeps no connection

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- writing (sampler thread) ----

    def record(self, ts: float, reports) -> None:
        """Store one round of reports: a sample row per seed, and open/update/resolve alerts."""
        db = self._conn()
        rows = []
        for rep in reports:
            f = rep.figures
            rows.append((
                rep.name, ts, 1 if f.get("up") else 0, int(rep.status), f.get("connections"),
                f.get("max_connections"), f.get("in_msgs_per_s"), f.get("out_msgs_per_s"), f.get("mem_bytes"),
                f.get("cpu_percent"), f.get("slow_consumers"), f.get("routes_live"), f.get("routes_expected"),
            ))  # fmt: skip
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            for rep in reports:
                self._track_alerts(db, ts, rep)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _track_alerts(db: sqlite3.Connection, ts: float, rep) -> None:
        from seed.health.checks import SKIPPED_UNREACHABLE

        open_rows = {
            r["check_name"]: r["id"]
            for r in db.execute(
                "SELECT id, check_name FROM alerts WHERE server = ? AND resolved_at IS NULL", (rep.name,)
            )
        }
        failing = set()
        for res in rep.results:
            if res.status.name == "OK" or res.reason == SKIPPED_UNREACHABLE:
                continue  # a skipped check is not a second alert for one unreachable server
            failing.add(res.name)
            if res.name in open_rows:
                db.execute(
                    "UPDATE alerts SET status = ?, reason = ?, last_seen = ? WHERE id = ?",
                    (res.status.name, res.reason, ts, open_rows[res.name]),
                )
            else:
                db.execute(
                    "INSERT INTO alerts (server, check_name, status, reason, first_seen, last_seen)"
                    " VALUES (?,?,?,?,?,?)",
                    (rep.name, res.name, res.status.name, res.reason, ts, ts),
                )
        for name, alert_id in open_rows.items():
            if name not in failing:
                db.execute("UPDATE alerts SET resolved_at = ? WHERE id = ?", (ts, alert_id))

    def prune(self, now: float | None = None) -> int:
        """Delete samples and resolved alerts older than the retention; returns samples deleted."""
        cutoff = (now or time.time()) - self.retention_s
        db = self._conn()
        n = db.execute("DELETE FROM samples WHERE ts < ?", (cutoff,)).rowcount
        db.execute("DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < ?", (cutoff,))
        return n

    # ---- reading (request threads) ----

    def series(self, server: str, metric: str, since: float, buckets: int = 240) -> list[tuple[float, float]]:
        """(ts, value) of one metric since `since`, averaged into at most `buckets` time buckets."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        now = time.time()
        width = max(1.0, (now - since) / buckets)
        # metric is from the fixed METRICS tuple above, never from the request as such
        sql = (
            f"SELECT CAST(ts / ? AS INTEGER) AS b, MAX(ts) AS t, AVG({metric}) AS v FROM samples "  # noqa: S608
            f"WHERE server = ? AND ts >= ? AND {metric} IS NOT NULL GROUP BY b ORDER BY b"
        )
        return [(r["t"], r["v"]) for r in self._conn().execute(sql, (width, server, since))]

    def sample_count(self, server: str | None = None) -> int:
        if server is None:
            return self._conn().execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM samples WHERE server = ?", (server,)).fetchone()[0]

    def open_alerts(self) -> list[dict]:
        rows = self._conn().execute(
            "SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY "
            "CASE status WHEN 'CRITICAL' THEN 0 WHEN 'WARNING' THEN 1 ELSE 2 END, first_seen"
        )
        return [dict(r) for r in rows]

    def recent_alerts(self, since: float, limit: int = 200) -> list[dict]:
        rows = self._conn().execute(
            "SELECT * FROM alerts WHERE resolved_at IS NOT NULL AND last_seen >= ? ORDER BY resolved_at DESC LIMIT ?",
            (since, limit),
        )
        return [dict(r) for r in rows]

    def first_seen(self) -> dict[tuple[str, str], float]:
        """{(server, check): first_seen} of the open alerts."""
        rows = self._conn().execute(
            "SELECT server, check_name, first_seen FROM alerts WHERE resolved_at IS NULL"
        )
        return {(r["server"], r["check_name"]): r["first_seen"] for r in rows}
