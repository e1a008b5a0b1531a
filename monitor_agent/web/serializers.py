"""Store rows and agent objects -> the API's shapes (web/shapes.py), one function per shape.

The store answers rows and model objects (LocalTask, FederationTaskRow, PeerState) and the
agent plain dicts (status, settings, outbox); these functions build the Structs that the
handlers answer and msgspec encodes. Each names every field: nothing reaches a response by
accident, and a field that is not in its shape cannot be set at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .. import __version__
from ..timestamps import rfc3339
from . import shapes

if TYPE_CHECKING:
    from ..interfaces import AgentLike
    from ..model import LocalTask
    from ..store import FederationTaskRow, PeerState

# What the Privacy tab promises is never sent (PROTOCOL.md §2, "Never in a message").
NEVER_SHARED = (
    "Wallet address or any 0x address",
    "Private keys",
    "This node's execution ids, TrueBit task ids and task hashes",
    "Block hashes",
    "Task inputs and outputs",
    "Log text",
    "Invoice amounts",
    "IP addresses and host names",
)

SHARED = (
    "Chain id (for example 1 for Ethereum)",
    "Block number (left out in strict privacy mode)",
    "Task type (for example wasm)",
    "A stand-in task id (global-task-…) made with a secret kept on this machine: it cannot be traced"
    " back to the real task",
    "Task status: received, completed or failed",
    "Execution time in milliseconds",
    "Timestamp, to the second",
    "A random-looking node id derived from a key made on this machine (not your wallet)",
    "With every message: that key's public half (header Tbf-Key) and the message's signature (Tbf-Sig)",
    "Your region, only if you set FEDERATION_REGION",
    "Counts: tasks in the last 24 h, completed, failed, active, average execution time",
)


def _ts(value: Any) -> str | None:
    """RFC 3339 UTC with Z, whole seconds: epoch seconds and datetimes are formatted, text
    passes through (the agent's own dicts carry it already formatted)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return rfc3339(value)
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _dt(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


# ---- federation (PROTOCOL.md §6) ----

# The global feed's page is built as JSON inside SQLite (Store.query_federation_tasks_json, the
# hot path): GlobalTask's wire names over the store's federation_tasks columns (a column is named
# as the field; receivedAt is formatted in SQL). A test holds it to `federation_task` byte for byte.
_FEED_SQL_EXPR = {"received_at": "strftime('%Y-%m-%dT%H:%M:%SZ', received_at / 1000, 'unixepoch')"}
FEDERATION_TASK_SQL = tuple(
    (f.encode_name, _FEED_SQL_EXPR.get(f.name, f.name)) for f in msgspec.structs.fields(shapes.GlobalTask)
)


def federation_task(row: FederationTaskRow) -> shapes.GlobalTask:
    """A received task as the global feed shows it."""
    return shapes.GlobalTask(
        task_id=row.task_id,
        chain_id=row.chain_id,
        block_number=row.block_number,
        task_type=row.task_type,
        status=row.status,  # type: ignore[arg-type]  # the pipeline admits only the three
        execution_time_ms=row.execution_time_ms,
        received_at=rfc3339(row.received_at / 1000),
        source_node=row.source_node,
    )


def federation_task_event(row: FederationTaskRow) -> dict[str, Any]:
    """The WebSocket `federation_task` event's data: the feed's task without receivedAt (the
    seed documentation's payload)."""
    out = msgspec.to_builtins(federation_task(row))
    del out["receivedAt"]
    return out


def peer(p: PeerState, now: int) -> shapes.Peer:
    return shapes.Peer(
        node_id=p.node_id,
        region=p.region or "UNKNOWN",
        online=p.online(now),
        tasks_reported=p.tasks_reported,
        last_seen=rfc3339(p.last_seen / 1000),
    )


def status(raw: Mapping[str, Any]) -> shapes.Status:
    """`Agent.status()` as the API and the WebSocket hello show it."""
    stats = raw.get("stats") or {}
    last = raw.get("lastError")
    return shapes.Status(
        enabled=bool(raw.get("enabled")),
        connected=bool(raw.get("connected")),
        state=raw.get("state") or "DISABLED",
        node_id=raw.get("nodeId"),
        last_error=error_event(last) if last else None,
        catch_up=catch_up(raw.get("catchUp")),
        stats=shapes.StatusStats(
            connected_peers=_int(stats.get("connectedPeers")) or 0,
            tasks24h=_int(stats.get("tasks24h")) or 0,
            active_nodes=_int(stats.get("activeNodes")) or 0,
            tasks_completed24h=_int(stats.get("tasksCompleted24h")) or 0,
            avg_execution_ms=_int(stats.get("avgExecutionMs")),
        ),
    )


def catch_up(raw: Any) -> shapes.CatchUp:
    """History catch-up progress, from the federation client's `catch_up` dict."""
    raw = raw if isinstance(raw, Mapping) else {}
    offered = raw.get("historyOffered")
    return shapes.CatchUp(
        catching_up=bool(raw.get("catchingUp")),
        history_offered=offered if isinstance(offered, bool) else None,
        code=str(raw["code"]) if raw.get("code") else None,
        since=_ts(raw.get("since")),
        last_completed_at=_ts(raw.get("lastCompletedAt")),
        read=_int(raw.get("read")) or 0,
        accepted=_int(raw.get("accepted")) or 0,
        dropped=_int(raw.get("dropped")) or 0,
        pending=_int(raw.get("pending")) or 0,
        max_age_s=_int(raw.get("maxAgeS")),
    )


def error_event(raw: Mapping[str, Any]) -> shapes.FederationError:
    """A {code, message, at} error (the federation client's last_error, the agent's database error)."""
    return shapes.FederationError(
        code=str(raw.get("code") or ""), message=str(raw.get("message") or ""), at=_ts(raw.get("at"))
    )


def settings(agent: AgentLike) -> shapes.Settings:
    cfg = agent.config
    switches = agent.settings()
    try:
        node_id = agent.status().get("nodeId")
    except Exception:  # status must never break the settings page
        node_id = cfg.node_id
    return shapes.Settings(
        enabled=bool(switches["enabled"]),
        broadcast_tasks=bool(switches["broadcastTasks"]),
        broadcast_stats=bool(switches["broadcastStats"]),
        receive_enabled=bool(switches["receiveEnabled"]),
        seed_url=cfg.seed_url_display,
        node_id=node_id,
        region=cfg.region,
        privacy=cfg.privacy,  # type: ignore[arg-type]  # config admits only the two
        version=__version__,
    )


def settings_applied(agent: AgentLike, restart_required: bool) -> shapes.SettingsApplied:
    return shapes.SettingsApplied(
        **msgspec.structs.asdict(settings(agent)), restart_required=bool(restart_required)
    )


# ---- this node ----


def local_task(t: LocalTask, include_private: bool) -> shapes.LocalTask:
    """One of this node's tasks (execution id and private fields only with the token)."""
    return shapes.LocalTask(
        status=t.status,
        received_at=_dt(t.received_at),
        started_at=_dt(t.started_at),
        finished_at=_dt(t.finished_at),
        chain_id=t.chain_id,
        block_number=t.block_number,
        task_type=t.task_type,
        execution_time_ms=t.execution_time_ms,
        exit_code=t.exit_code,
        steps=t.steps,
        memory_peak=t.memory_peak,
        cached=t.cached,
        execution_id=t.execution_id if include_private else msgspec.UNSET,
        private=dict(t.private) if include_private else msgspec.UNSET,
    )


def local_stats(raw: Mapping[str, Any]) -> shapes.LocalStats:
    """This node's counters (Store.local_stats): all time by status, and the last 24 h."""
    by_status = raw.get("byStatus") or {}
    return shapes.LocalStats(
        total=_int(raw.get("total")) or 0,
        by_status=shapes.ByStatus(
            **{s: _int(by_status.get(s)) or 0 for s in shapes.ByStatus.__struct_fields__}
        ),
        active_tasks=_int(raw.get("activeTasks")) or 0,
        tasks24h=_int(raw.get("tasks24h")) or 0,
        tasks_completed24h=_int(raw.get("tasksCompleted24h")) or 0,
        tasks_failed24h=_int(raw.get("tasksFailed24h")) or 0,
        avg_execution_ms=_int(raw.get("avgExecutionMs")),
    )


def privacy(outbox: list[dict[str, Any]], blocked: int) -> shapes.Privacy:
    return shapes.Privacy(
        outbox=[outgoing(m) for m in outbox],
        blocked=_int(blocked) or 0,
        never_shared=list(NEVER_SHARED),
        shared=list(SHARED),
    )


def privacy_blocked(agent: AgentLike) -> int:
    """Outgoing messages the privacy gate blocked (the federation client's counter)."""
    try:
        return int(agent.federation.counters().get("blocked", 0))
    except Exception:  # a counter must never break the page
        return 0


def outgoing(item: Mapping[str, Any]) -> shapes.Outgoing:
    """One outbox entry (FederationClient.outbox_snapshot): subject, the exact payload text and
    headers as sent, when, whether blocked."""
    headers = item.get("headers")
    return shapes.Outgoing(
        subject=item.get("subject"),
        payload=str(item.get("payload", "")),
        # The NATS headers go out with the payload (Tbf-Key, Tbf-Sig): part of what is sent.
        headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {},
        at=_ts(item.get("at")),
        blocked=bool(item.get("blocked", False)),
        reason=item.get("reason"),
    )
