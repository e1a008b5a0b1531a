"""Received federation data as the agent reads it: the global feed, peers, key bindings.

Rows arrive through the batch writer (writer.py); totals and peers come from the in-memory views
(stats.py), pages of the feed from its cache (feed.py) while nothing changed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from ..protocol import PEER_FORGET_S
from .engine import Engine
from .feed import FeedCache
from .rows import FederationTaskRow, PeerState
from .stats import FederationStats
from .times import now_ms, to_ms

# FederationTaskRow's fields, in order.
_FEDERATION_TASK_COLS = (
    "source_node, task_id, event, chain_id, block_number, task_type, status, execution_time_ms, "
    "timestamp, received_at"
)


class FederationRows:
    """Queries of `federation_tasks` / `federation_peers` (a part of `Store`)."""

    engine: Engine
    stats: FederationStats
    feed: FeedCache

    def _federation_filter(self, chain_id: int | None, since: Any) -> tuple[str, list]:
        """WHERE clause and its parameters for the global feed's filters."""
        clauses: list[str] = []
        params: list[Any] = []
        if chain_id is not None:
            clauses.append("chain_id = ?")
            params.append(int(chain_id))
        since_ms = to_ms(since)
        if since_ms is not None:
            clauses.append("received_at > ?")
            params.append(since_ms)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _federation_total(self, where: str, params: list, chain_id: int | None, since: Any) -> int:
        """Rows matching the filters. Read after the page: the writer counts rows before it commits
        them, so the total covers every row the page could show (never "14 of 12")."""
        if to_ms(since) is not None:
            return int(
                self.engine.reader()
                .execute(f"SELECT COUNT(*) FROM federation_tasks {where}", params)  # noqa: S608 - fixed clauses, values bound
                .fetchone()[0]
            )
        if chain_id is not None:
            with self.stats.lock:
                return self.stats.chain_totals.get(int(chain_id), 0)
        return self.stats.total

    def query_federation_tasks(
        self, limit: int = 100, chain_id: int | None = None, since: Any = None
    ) -> tuple[list[FederationTaskRow], int]:
        """Newest first; `total` counts every row matching the filters (PROTOCOL.md §6)."""
        where, params = self._federation_filter(chain_id, since)
        rows = (
            self.engine.reader()
            .execute(
                f"SELECT {_FEDERATION_TASK_COLS} FROM federation_tasks {where} "  # noqa: S608 - fixed columns, values bound
                "ORDER BY received_at DESC, id DESC LIMIT ?",
                (*params, int(limit)),
            )
            .fetchall()
        )
        return [FederationTaskRow(*r) for r in rows], self._federation_total(where, params, chain_id, since)

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
        generation, hit = self.feed.get(key)
        if hit is not None:
            return hit
        where, params = self._federation_filter(chain_id, since)
        pairs = ", ".join(f"'{k}', {expr}" for k, expr in fields)
        (text,) = (
            self.engine.reader()
            .execute(
                f"SELECT json_group_array(json(j)) FROM (SELECT json_object({pairs}) AS j "  # noqa: S608 - fixed columns, values bound
                f"FROM federation_tasks {where} ORDER BY received_at DESC, id DESC LIMIT ?)",
                (*params, int(limit)),
            )
            .fetchone()
        )
        total = self._federation_total(where, params, chain_id, since)
        self.feed.put(key, generation, (text, total))
        return text, total

    def read(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """A read-only query on this thread's connection, for modules that own their queries."""
        return self.engine.reader().execute(sql, params)

    def list_peers(self) -> list[PeerState]:
        """Peers heard from in the last 10 minutes, most recent first (copies: the writer updates
        its own)."""
        horizon = now_ms() - PEER_FORGET_S * 1000
        with self.stats.lock:
            peers = [replace(p) for p in self.stats.peers.values() if p.last_seen >= horizon]
        return sorted(peers, key=lambda p: (-p.last_seen, p.node_id))

    def network_stats(self) -> dict[str, Any]:
        return self.stats.network(now_ms())

    def federation_counts(self) -> dict[str, int]:
        with self.stats.lock:
            return {"tasks": self.stats.total, "peers": len(self.stats.peers)}

    def pinned_key(self, node_id: str) -> str | None:
        """The key first seen for `node_id` (trust on first use), kept for the retention window."""
        with self.stats.lock:
            peer = self.stats.peers.get(node_id)
            return None if peer is None else peer.pinned_key

    def pinned_keys(self) -> dict[str, str]:
        with self.stats.lock:
            return {p.node_id: p.pinned_key for p in self.stats.peers.values() if p.pinned_key}

    def node_for_key(self, key: str) -> str | None:
        """The one nodeId `key` was first seen speaking for (kept as long as that peer's pin)."""
        with self.stats.lock:
            return self.stats.key_nodes.get(key)

    def last_federation_received_at(self) -> int | None:
        """When the newest stored federation task event arrived (epoch ms; None: none stored)."""
        row = self.engine.reader().execute("SELECT MAX(received_at) FROM federation_tasks").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def has_federation_task(self, node_id: str, task_id: str, event: str) -> bool:
        """Whether that task event is stored (one look-up in the unique index)."""
        row = (
            self.engine.reader()
            .execute(
                "SELECT 1 FROM federation_tasks WHERE source_node = ? AND task_id = ? AND event = ?",
                (node_id, task_id, event),
            )
            .fetchone()
        )
        return row is not None
