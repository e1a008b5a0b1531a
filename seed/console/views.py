"""Plain view models for the templates and the JSON API (no Flask here, easy to test)."""

from __future__ import annotations

import time

from seed.health.checks import SKIPPED_UNREACHABLE
from seed.health.units import human_bytes, human_duration

WINDOWS = {"1h": 3600, "24h": 86400}


def rate(value) -> str:
    return "–" if value is None else (f"{value:.1f}" if value < 100 else f"{value:,.0f}")


def card(rep, first_seen: dict | None = None) -> dict:
    """One seed card of the overview: headline figures and the failing checks, worst first."""
    f = rep.figures
    first_seen = first_seen or {}
    failing = [
        {
            "check": r.name,
            "status": r.status.name,
            "reason": r.reason,
            "since": first_seen.get((rep.name, r.name)),
        }
        for r in rep.failing
        if r.reason != SKIPPED_UNREACHABLE
    ]
    conns, max_conns = f.get("connections"), f.get("max_connections")
    return {
        "name": rep.name,
        "url": rep.url,
        "status": rep.status.name,
        "up": bool(f.get("up")),
        "version": f.get("version") or "–",
        "uptime": human_duration(f["uptime_s"]) if f.get("uptime_s") is not None else "–",
        "connections": f"{conns if conns is not None else '–'} / {max_conns if max_conns is not None else '–'}",
        "conn_share": (conns / max_conns) if conns is not None and max_conns else None,
        "in_rate": rate(f.get("in_msgs_per_s")),
        "out_rate": rate(f.get("out_msgs_per_s")),
        "slow_consumers": f.get("slow_consumers") if f.get("slow_consumers") is not None else "–",
        "mem": human_bytes(f["mem_bytes"]) if f.get("mem_bytes") is not None else "–",
        "routes": f"{f.get('routes_live') if f.get('routes_live') is not None else '–'} / {f.get('routes_expected', 0)}",
        "failing": failing,
        "checks_ok": sum(1 for r in rep.results if r.status.name == "OK"),
        "checks_total": len(rep.results),
    }


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "–"
    return human_duration((now or time.time()) - ts) + " ago"


def utc(ts: float | None) -> str:
    if ts is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def mesh(spec, reports) -> dict:
    """Expected vs live route mesh: rows and columns are the clustered servers of the spec."""
    from seed.health.checks import live_route_peers

    names = [s.name for s in spec.servers if s.cluster_port is not None]
    by_name = {r.name: r for r in reports}
    rows = []
    for a in names:
        rep = by_name.get(a)
        live = live_route_peers(rep.sample.routez) if rep and rep.sample.routez is not None else None
        cells = []
        for b in names:
            if a == b:
                cells.append({"state": "self", "text": "·"})
            elif live is None:
                cells.append({"state": "unknown", "text": "?"})
            elif b in live:
                cells.append({"state": "live", "text": "✓"})
            else:
                cells.append({"state": "missing", "text": "✗"})
        extra = sorted(live - set(names)) if live else []
        rows.append(
            {"name": a, "cells": cells, "extra": extra, "reachable": rep is not None and rep.sample.reachable}
        )
    clustered = any(s.cluster_port is not None for s in spec.servers)
    return {"names": names, "rows": rows, "cluster_name": spec.cluster_name, "clustered": clustered}
