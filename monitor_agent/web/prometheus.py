"""`/metrics`: the agent's registry plus the web layer's own WebSocket gauges."""

from __future__ import annotations

import logging
import weakref

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .state import WebState, state

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


class WebCollector(Collector):
    """Figures read at scrape time from the live objects (no bookkeeping on the hot path)."""

    def __init__(self, web: WebState):
        self.web = web

    def collect(self):
        tasks = GaugeMetricFamily(
            "monitor_agent_tasks", "This node's tasks in the local store, by status", labels=["status"]
        )
        try:
            by_status = self.web.agent.store.local_stats().get("byStatus", {})
        except Exception:  # a closed or broken store: report no series rather than fail the scrape
            log.warning("metrics: local task counts unavailable", exc_info=True)
            by_status = {}
        for status, count in sorted(by_status.items()):
            tasks.add_metric([status], count)
        yield tasks
        clients = GaugeMetricFamily(
            "monitor_agent_websocket_clients", "WebSocket clients connected to /ws right now"
        )
        clients.add_metric([], self.web.ws_clients)
        yield clients
        dropped = CounterMetricFamily(
            "monitor_agent_websocket_dropped",
            "WebSocket clients closed by the server, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self.web.ws_dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped


# One collector per registry, re-pointed when an app is rebuilt for the same agent.
_collectors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register(registry, web: WebState) -> None:
    if registry is None:
        return
    existing = _collectors.get(registry)
    if existing is not None:
        existing.web = web
        return
    collector = WebCollector(web)
    registry.register(collector)
    _collectors[registry] = collector


@bp.get("/metrics")
def metrics():
    registry = state().agent.metrics_registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
