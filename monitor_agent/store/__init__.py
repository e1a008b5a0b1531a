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

A failed write raises `StoreError` (FED_006) to the caller (local tasks) or is retried by
the writer (received rows, kept in memory meanwhile); nothing already stored is deleted.

The parts, one concern each:
  engine.py      the file, its connections (one writer behind a lock, a reader per thread),
                 migrations, write transactions (StoreError)
  rows.py        the row shapes and their pure merge rules (merge_event, PeerState.heard)
  local.py       the node's own tasks
  records.py     cursors, raw log lines, invoices, meta
  federation.py  reading received rows and peers
  writer.py      the batch writer thread (received rows and peers)
  stats.py       in-memory counters and peers (network figures without a scan)
  feed.py        the global feed's page cache
  retention.py   the retention window, and eviction when the database is full
  core.py        `Store`, which puts them together
Times are stored as integer epoch milliseconds (UTC): times.py. The store answers rows and model
objects; the API's shapes are the web layer's (web/serializers.py).
"""

from __future__ import annotations

from .core import Store
from .engine import MIGRATIONS, SCHEMA_VERSION
from .rows import STATUS_RANK, FederationTaskRow, PeerState, merge_event
from .times import DAY_MS, MINUTE_MS, iso, now_ms, to_ms

__all__ = [
    "DAY_MS",
    "MIGRATIONS",
    "MINUTE_MS",
    "SCHEMA_VERSION",
    "STATUS_RANK",
    "FederationTaskRow",
    "PeerState",
    "Store",
    "iso",
    "merge_event",
    "now_ms",
    "to_ms",
]
