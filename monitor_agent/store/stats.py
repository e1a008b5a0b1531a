"""The in-memory views of the received federation data: counters and peers, never a scan per request.

Seeded by one query at open (`load`) and kept current by the writer (`count_stored`), eviction
(`uncount_evicted`), retention (`forget_peers`, `recount_chains`) and erasure (`clear`). All
under `lock`, which callers also take to read several fields consistently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from .rows import FederationTaskRow, PeerState
from .times import DAY_MS, MINUTE_MS


class Window24h:
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


def count_chains(conn: sqlite3.Connection) -> dict[int, int]:
    """Rows per chain id: one pass over the (chain_id, received_at) index (at open, after retention)."""
    return dict(conn.execute("SELECT chain_id, COUNT(*) FROM federation_tasks GROUP BY chain_id").fetchall())


class FederationStats:
    """Totals (all rows, per chain), the 24 h window, and the peers with their pinned keys."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window = Window24h()
        self.total = 0
        # Rows per chain id, so `total` of a chainId-filtered page is not a COUNT(*) per request.
        self.chain_totals: dict[int, int] = {}
        self.peers: dict[str, PeerState] = {}
        # key -> the one nodeId it speaks for (the reverse of the peers' pinned keys, PROTOCOL.md §3).
        self.key_nodes: dict[str, str] = {}

    def load(self, conn: sqlite3.Connection, now: int) -> None:
        """Seed every view from the database (at open)."""
        self.total = conn.execute("SELECT COUNT(*) FROM federation_tasks").fetchone()[0]
        self.chain_totals = count_chains(conn)
        rows = conn.execute(
            """SELECT received_at / ? AS m, SUM(first),
                      SUM(event = 'task_completed'), SUM(event = 'task_failed'),
                      SUM(CASE WHEN event = 'task_completed' THEN execution_time_ms END),
                      COUNT(CASE WHEN event = 'task_completed' THEN execution_time_ms END)
               FROM federation_tasks WHERE received_at >= ? GROUP BY m""",
            (MINUTE_MS, now - DAY_MS),
        ).fetchall()
        for minute, *values in rows:
            self.window.add(minute, (v or 0 for v in values))
        for r in conn.execute(
            "SELECT node_id, region, version, first_seen, last_seen, last_event, tasks_reported, "
            "pinned_key, stats FROM federation_peers ORDER BY first_seen, node_id"
        ):
            stats = json.loads(r[8]) if r[8] else None
            self.peers[r[0]] = PeerState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], stats)
            if r[7]:
                self.key_nodes.setdefault(r[7], r[0])  # rows from before the binding: the first wins

    def heard(self, node_id: str, at_ms: int, **facts: Any) -> None:
        """A message from `node_id` (see PeerState.heard); a newly pinned key is bound to it."""
        with self.lock:
            peer = self.peers.get(node_id)
            if peer is None:
                peer = self.peers[node_id] = PeerState.first_heard(node_id, at_ms, **facts)
                pinned = peer.pinned_key is not None
            else:
                pinned = peer.heard(at_ms, **facts)
            if pinned and peer.pinned_key is not None:
                self.key_nodes.setdefault(peer.pinned_key, node_id)

    def count_stored(self, stored: list[tuple[FederationTaskRow, bool]], sign: int = 1) -> None:
        """Rows the writer is inserting (with whether each was its task's first event); `sign` -1
        undoes the count of an insert that did not commit."""
        if not stored:
            return
        with self.lock:
            self.total += sign * len(stored)
            for row, first in stored:
                self.chain_totals[row.chain_id] = self.chain_totals.get(row.chain_id, 0) + sign
                completed = row.event == "task_completed"
                exec_ms = row.execution_time_ms if completed and row.execution_time_ms is not None else None
                self.window.add(
                    row.received_at // MINUTE_MS,
                    (
                        sign * int(first),
                        sign * int(completed),
                        sign * int(row.event == "task_failed"),
                        sign * (exec_ms or 0),
                        sign * int(exec_ms is not None),
                    ),
                )

    def count_peer_tasks(self, stored: list[tuple[FederationTaskRow, bool]], sign: int = 1) -> None:
        """A new task from a peer raises its reported count until its next presence message says
        otherwise (`sign` -1 undoes a failed attempt)."""
        with self.lock:
            for row, first in stored:
                peer = self.peers.get(row.source_node)
                if first and peer is not None:
                    peer.tasks_reported += sign

    def uncount_evicted(self, rows: list[tuple[int, int, int, str, int | None]], now: int) -> None:
        """Rows deleted to make room: (chain_id, received_at, first, event, execution_time_ms)."""
        with self.lock:
            self.total -= len(rows)
            window = self.window.buckets
            for chain_id, received_at, first, event, exec_ms in rows:
                left = self.chain_totals.get(chain_id, 0) - 1
                if left > 0:
                    self.chain_totals[chain_id] = left
                else:
                    self.chain_totals.pop(chain_id, None)
                minute = received_at // MINUTE_MS
                if received_at >= now - DAY_MS and minute in window:
                    completed = event == "task_completed" and exec_ms is not None
                    self.window.add(
                        minute,
                        (
                            -int(first),
                            -int(event == "task_completed"),
                            -int(event == "task_failed"),
                            -(exec_ms or 0) if completed else 0,
                            -int(completed),
                        ),
                    )

    def forget_peers(self, node_ids: Iterable[str]) -> None:
        """Drop peers and their key bindings (caller holds `lock`)."""
        for node_id in node_ids:
            peer = self.peers.pop(node_id, None)
            if peer is not None and peer.pinned_key and self.key_nodes.get(peer.pinned_key) == node_id:
                del self.key_nodes[peer.pinned_key]

    def clear(self) -> None:
        with self.lock:
            self.total = 0
            self.chain_totals.clear()
            self.window.clear()
            self.peers.clear()
            self.key_nodes.clear()

    def network(self, now: int) -> dict[str, Any]:
        """The network figures of the last 24 h (PROTOCOL.md §6 `stats`)."""
        with self.lock:
            self.window.evict(now)
            tasks, completed, failed, exec_sum, exec_n = self.window.totals
            online = sum(1 for p in self.peers.values() if p.online(now))
            active = sum(1 for p in self.peers.values() if now - p.last_seen < DAY_MS)
        return {
            "connectedPeers": online,
            "tasks24h": tasks,
            "activeNodes": active,
            "tasksCompleted24h": completed,
            "tasksFailed24h": failed,
            "avgExecutionMs": round(exec_sum / exec_n) if exec_n else None,
        }
