"""Prometheus metrics of one agent (its own registry, so several agents can share a process).

The web layer exposes `agent.metrics_registry` at /metrics. Names say their source
(`monitor_agent_` local, `federation_` the federation client); labels stay low-cardinality:
drop `reason` and FED `code` come from fixed vocabularies, never from message content.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from .protocol import FederationState

# Why an incoming message was dropped -> the FED code it counts under ("none": not an error).
DROP_CODES = {
    "oversize": "FED_003",
    "not_json": "FED_003",
    "version": "FED_009",
    "schema": "FED_003",
    "future_timestamp": "FED_003",
    "subject_mismatch": "FED_003",
    "unsigned": "FED_003",
    "bad_signature": "FED_003",
    "key_mismatch": "FED_005",
    "key_reused": "FED_003",  # a known key under a second nodeId (one key, one nodeId)
    "rate_limited": "FED_004",
    "own": "none",
    "duplicate": "none",
    "stale": "none",  # older than the retention/freshness window or than what was already seen
    "store_backlog": "FED_006",
}


class AgentMetrics:
    """Counters and gauges the agent updates; plain attribute access, thread-safe (prometheus-client)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.local_task_events = Counter(
            "monitor_agent_task_events", "Local task lifecycle events ingested", ["kind"], registry=r
        )
        self.local_task_changes = Counter(
            "monitor_agent_task_updates", "Local task rows created or changed", registry=r
        )
        self.received = Counter(
            "federation_messages_received", "Messages received from the federation", ["kind"], registry=r
        )
        self.dropped = Counter(
            "federation_messages_dropped",
            "Incoming federation messages dropped, by reason and FED code",
            ["reason", "code"],
            registry=r,
        )
        self.stored = Counter("federation_tasks_stored", "Received task events stored", registry=r)
        self.published = Counter(
            "federation_messages_published", "Messages published to the federation", ["kind"], registry=r
        )
        self.outbound_dropped = Counter(
            "federation_outbound_dropped",
            "Outgoing messages not sent, by reason",
            ["reason"],
            registry=r,
        )
        self.errors = Counter("federation_errors", "Federation errors by FED code", ["code"], registry=r)
        self.state = Gauge(
            "federation_state", "1 for the federation client's current state", ["state"], registry=r
        )
        for s in FederationState:
            self.state.labels(state=s.value).set(1 if s is FederationState.DISABLED else 0)
        self.outbound_buffered = Gauge(
            "federation_outbound_buffered", "Messages waiting for the connection to return", registry=r
        )
        self.writer_backlog = Gauge(
            "monitor_agent_store_writer_backlog", "Received rows waiting for the batch writer", registry=r
        )
        self.peers_online = Gauge("federation_peers_online", "Peers heard from in the last 90 s", registry=r)

    def drop(self, reason: str) -> None:
        self.dropped.labels(reason=reason, code=DROP_CODES.get(reason, "FED_003")).inc()

    def set_state(self, state: FederationState) -> None:
        for s in FederationState:
            self.state.labels(state=s.value).set(1 if s is state else 0)

    def bind_gauges(self, writer_backlog: Callable[[], float], peers_online: Callable[[], float]) -> None:
        """Gauges read at scrape time from the live objects."""
        self.writer_backlog.set_function(writer_backlog)
        self.peers_online.set_function(peers_online)
