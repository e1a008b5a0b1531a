"""HTML pages: Overview, Server, Cluster, Alerts. Each page's live part is re-fetched with
`?partial=1` by console.js, so pages refresh without full reloads."""

from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, render_template

from seed.health.units import human_bytes

from . import live, params, views
from .sparkline import sparkline

bp = Blueprint("pages", __name__)


def _sampler():
    return current_app.extensions["sampler"]


def _page(template: str, partial: bool = False, **ctx):
    """The whole page, or only its live fragment when console.js asks for it (`?partial=1`)."""
    sampler = _sampler()
    sampled_at, reports = sampler.latest()
    ctx.update(
        sampled_at=sampled_at,
        sampled_utc=views.utc(sampled_at),
        spec_error=sampler.spec_error,
        refresh_s=current_app.config["REFRESH_S"],
        federation=sampler.spec.name,
    )
    return render_template(template, partial=partial, **ctx)


@bp.route("/")
def overview():
    args = params.query(partial=params.flag)
    sampled_at, reports = _sampler().latest()
    first_seen = current_app.extensions["history"].first_seen()
    cards = [views.card(r, first_seen) for r in reports]
    counts = {s: sum(1 for c in cards if c["status"] == s) for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")}
    return _page(
        "overview.html",
        args.get("partial", False),
        cards=cards,
        counts=counts,
        now=time.time(),
        ago=views.ago,
    )


@bp.route("/server/<name>")
def server(name: str):
    args = params.query(partial=params.flag, window=params.choice(*views.WINDOWS), page=params.count(10_000))
    sampler = _sampler()
    if name not in sampler.spec.names:
        abort(404, description=f"no seed named {name!r} in the spec (seeds: {', '.join(sampler.spec.names)})")
    window = args.get("window", "1h")
    page = args.get("page", 0)
    rep = sampler.report(name)
    history = current_app.extensions["history"]
    since = time.time() - views.WINDOWS[window]
    charts = [
        ("Connections", history.series(name, "connections", since), lambda v: f"{v:.0f}"),
        ("Messages in /s", history.series(name, "in_msgs_per_s", since), lambda v: f"{v:.1f}"),
        ("Messages out /s", history.series(name, "out_msgs_per_s", since), lambda v: f"{v:.1f}"),
        ("Memory", history.series(name, "mem_bytes", since), human_bytes),
        ("CPU %", history.series(name, "cpu_percent", since), lambda v: f"{v:.1f}"),
    ]
    sparks = [{"label": label, "svg": sparkline(vals, label=label, fmt=fmt)} for label, vals, fmt in charts]
    first_seen = history.first_seen()
    checks = []
    if rep is not None:
        ordered = rep.failing + [r for r in rep.results if r.status.name == "OK"]
        checks = [
            {
                "check": r.name,
                "status": r.status.name,
                "reason": r.reason,
                "since": first_seen.get((name, r.name)),
            }
            for r in ordered
        ]
    lookup = (
        live.lookup(sampler.spec.server(name).monitor_url, page) if rep and rep.sample.reachable else None
    )
    return _page(
        "server.html",
        args.get("partial", False),
        name=name,
        card=views.card(rep, first_seen) if rep else None,
        checks=checks,
        sparks=sparks,
        window=window,
        windows=list(views.WINDOWS),
        live=lookup,
        page=page,
        page_size=live.PAGE_SIZE,
        ago=views.ago,
        now=time.time(),
    )


@bp.route("/cluster")
def cluster():
    args = params.query(partial=params.flag)
    sampler = _sampler()
    return _page(
        "cluster.html", args.get("partial", False), mesh=views.mesh(sampler.spec, sampler.latest()[1])
    )


@bp.route("/alerts")
def alerts():
    args = params.query(partial=params.flag)
    history = current_app.extensions["history"]
    now = time.time()
    return _page(
        "alerts.html",
        args.get("partial", False),
        current=history.open_alerts(),
        recent=history.recent_alerts(now - 7 * 86400),
        ago=views.ago,
        utc=views.utc,
        now=now,
    )
