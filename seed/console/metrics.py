"""`/metrics`: the seeds' figures from the latest sampling round, plus the console's own poll latency."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from seed.health.exposition import ReportsCollector

bp = Blueprint("metrics", __name__)


def build_registry(sampler_ref) -> tuple[CollectorRegistry, Histogram]:
    """A registry of our own (not the process-global one): seeds collector + poll latency histogram."""
    registry = CollectorRegistry(auto_describe=False)
    poll = Histogram(
        "seed_console_poll_seconds",
        "Time the console takes to sample all seeds once",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        registry=registry,
    )
    registry.register(ReportsCollector(lambda: sampler_ref().latest()[1] if sampler_ref() else []))
    return registry, poll


@bp.route("/metrics")
def metrics():
    body = generate_latest(current_app.extensions["metrics_registry"])
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
