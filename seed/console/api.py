"""JSON API behind the same login: `/api/seeds`, `/api/seeds/<name>/health`, `/api/seeds/<name>/history`."""

from __future__ import annotations

import math
import time
from datetime import datetime

from flask import Blueprint, current_app, jsonify, request

from . import views
from .history import METRICS

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_SINCE_S = 366 * 86400


def error(code: int, kind: str, message: str):
    resp = jsonify({"error": {"code": kind, "message": message}})
    resp.status_code = code
    return resp


def parse_since(raw: str | None, now: float) -> float:
    """`since` as unix seconds, RFC 3339, or a span back from now (`90s`, `15m`, `1h`, `7d`)."""
    if raw is None or raw == "":
        return now - 3600
    raw = raw.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw[-1:] in units and raw[:-1].isdigit():
        return now - int(raw[:-1]) * units[raw[-1]]
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):  # nan/inf would make the JSON answer invalid
            raise ValueError(f"since={raw!r} is not a finite unix time")
        return value
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise ValueError(
            f"since={raw!r} is not a unix time, an RFC 3339 time or a span like 15m, 1h, 7d"
        ) from None


def _sampler():
    return current_app.extensions["sampler"]


def _unknown_seed(name: str):
    names = _sampler().spec.names
    return error(404, "not_found", f"no seed named {name!r} (seeds: {', '.join(names)})")


@bp.route("/seeds")
def seeds():
    sampled_at, reports = _sampler().latest()
    first_seen = current_app.extensions["history"].first_seen()
    return jsonify({"sampledAt": sampled_at, "seeds": [views.card(r, first_seen) | {"figures": r.figures}
                                                       for r in reports]})  # fmt: skip


@bp.route("/seeds/<name>/health")
def seed_health(name: str):
    sampler = _sampler()
    if name not in sampler.spec.names:
        return _unknown_seed(name)
    sampled_at, _ = sampler.latest()
    rep = sampler.report(name)
    if rep is None:
        return error(
            503, "not_sampled_yet", f"seed {name!r} has not been sampled yet: retry in a few seconds"
        )
    return jsonify({"sampledAt": sampled_at} | rep.to_dict())


@bp.route("/seeds/<name>/history")
def seed_history(name: str):
    if name not in _sampler().spec.names:
        return _unknown_seed(name)
    metric = request.args.get("metric", "connections")
    if metric not in METRICS:
        return error(400, "bad_request", f"metric={metric!r} is not one of {', '.join(METRICS)}")
    now = time.time()
    try:
        since = parse_since(request.args.get("since"), now)
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    since = max(since, now - MAX_SINCE_S)
    points = current_app.extensions["history"].series(name, metric, since)
    return jsonify({"seed": name, "metric": metric, "since": since, "points": [[t, v] for t, v in points]})
