"""The agent's SQLite store (its contract: core.py's docstring)."""

from __future__ import annotations

from .core import (
    DAY_MS,
    MIGRATIONS,
    MINUTE_MS,
    SCHEMA_VERSION,
    STATUS_RANK,
    FederationTaskRow,
    PeerState,
    Store,
    iso,
    merge_event,
    now_ms,
    to_ms,
)

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
