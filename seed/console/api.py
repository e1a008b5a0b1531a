"""JSON API behind the same login: `/api/seeds`, `/api/seeds/<name>/health`, `/api/seeds/<name>/history`."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from . import params, views
from .history import METRICS

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_SINCE_S = 366 * 86400


def error(code: int, kind: str, message: str):
    resp = jsonify({"error": {"code": kind, "message": message}})
    resp.status_code = code
    return resp


def _sampler():
    return current_app.extensions["sampler"]


def _unknown_seed(name: str):
    names = _sampler().spec.names
    return error(404, "not_found", f"no seed named {name!r} (seeds: {', '.join(names)})")


@bp.route("/seeds")
def seeds():
    params.query()
    sampled_at, reports = _sampler().latest()
    first_seen = current_app.extensions["history"].first_seen()
    return jsonify({"sampledAt": sampled_at, "seeds": [views.card(r, first_seen) | {"figures": r.figures}
                                                       for r in reports]})  # fmt: skip


@bp.route("/seeds/<name>/health")
def seed_health(name: str):
    params.query()
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
    args = params.query(metric=params.choice(*METRICS), since=params.since)
    if name not in _sampler().spec.names:
        return _unknown_seed(name)
    metric = args.get("metric", "connections")
    now = time.time()
    since = max(params.parse_since(args.get("since"), now), now - MAX_SINCE_S)
    points = current_app.extensions["history"].series(name, metric, since)
    return jsonify({"seed": name, "metric": metric, "since": since, "points": [[t, v] for t, v in points]})
