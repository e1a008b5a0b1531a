"""The dashboard: four server-rendered tabs; static/app.js keeps them live over /ws."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, render_template
from msgspec import to_builtins

from .. import __version__
from ..store import now_ms
from . import serializers as ser
from .state import state

# Templates and static files live beside app.py (the app's own folders).
bp = Blueprint("dashboard", __name__)

TABS = (
    ("node", "Node", "/"),
    ("network", "Network", "/network"),
    ("settings", "Settings", "/settings"),
    ("privacy", "Privacy", "/privacy"),
)

# Text + icon for each federation state: status is never told by colour alone. app.js reads both
# tables from the page (<body data-states, data-task-icons>): one definition each.
STATE_LABELS = {
    "CONNECTED": ("✓", "Connected"),
    "DEGRADED": ("⚠", "Degraded: publishing refused"),
    "CONNECTING": ("…", "Connecting"),
    "RECONNECTING": ("↻", "Reconnecting"),
    "ERROR": ("⚠", "Error"),
    "DISABLED": ("○", "Disabled"),
}
# One icon per local status (model.TASK_STATUSES; a test holds the keys to it).
TASK_ICONS = {"received": "↓", "running": "▶", "completed": "✓", "failed": "✗", "unknown": "?"}


def _common(tab: str) -> dict[str, Any]:
    agent = state().agent
    status = to_builtins(ser.status(agent.status()))  # templates read the API's field names
    return {
        "tab": tab,
        "tabs": TABS,
        "status": status,
        "state_labels": STATE_LABELS,
        "task_icons": TASK_ICONS,
        "version": __version__,
    }


@bp.get("/")
def node():
    ctx = _common("node")
    store = state().agent.store
    rows, total = store.list_local_tasks(25, 0, None)
    ctx["tasks"] = to_builtins([ser.local_task(r, False) for r in rows])
    ctx["tasks_total"] = int(total)
    ctx["stats"] = to_builtins(ser.local_stats(store.local_stats()))
    return render_template("node.html", **ctx)


@bp.get("/network")
def network():
    ctx = _common("network")
    store = state().agent.store
    rows, total = store.query_federation_tasks(50, None, None)
    ctx["feed"] = to_builtins([ser.federation_task(r) for r in rows])
    ctx["feed_total"] = int(total)
    now = now_ms()
    peers = to_builtins([ser.peer(p, now) for p in store.list_peers()])
    by_region: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in peers:
        by_region[p["region"]].append(p)
    ctx["regions"] = sorted(by_region.items())
    ctx["peers_total"] = len(peers)
    ctx["peers_online"] = sum(1 for p in peers if p["online"])
    return render_template("network.html", **ctx)


@bp.get("/settings")
def settings():
    ctx = _common("settings")
    ctx["settings"] = to_builtins(ser.settings(state().agent))
    ctx["token_path"] = state().token_path
    ctx["retention_days"] = state().agent.config.task_retention_days
    return render_template("settings.html", **ctx)


@bp.get("/privacy")
def privacy():
    ctx = _common("privacy")
    agent = state().agent
    ctx["privacy"] = to_builtins(ser.privacy(agent.outbox_snapshot(), ser.privacy_blocked(agent)))
    ctx["timing"] = _timing_note(agent.settings())
    return render_template("privacy.html", **ctx)


def _timing_note(s: dict[str, bool]) -> str:
    """What peers can learn about *when* this node works, with the switches as they are now."""
    from ..protocol import STATS_PRIVATE_BUCKET_S

    if not s["enabled"]:
        return "Federation is off: nothing about your tasks, not even their timing, leaves this machine."
    if s["broadcastTasks"]:
        return (
            "Task events go out as they happen, so peers see when each task was received and finished "
            "(to the second; to 5 minutes with FEDERATION_PRIVACY=strict)."
        )
    if s["broadcastStats"]:
        minutes = STATS_PRIVATE_BUCKET_S // 60
        return (
            f"Task events are off and statistics go out only once per {minutes}-minute window (UTC), never "
            f"when a task changes: peers can tell how many tasks finished in each {minutes}-minute window "
            "and how many were running at its end, not when each one did."
        )
    return "Neither task events nor statistics are sent: peers learn nothing about when your node works."
