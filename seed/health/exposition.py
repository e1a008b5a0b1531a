"""Prometheus metrics of the seeds, low cardinality (one `seed` label, plus `check` on the verdicts).
Used by `seedctl health --format prometheus` (textfile collector) and the console's /metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .runner import ServerReport


def metric_families(reports: Iterable[ServerReport]) -> list:
    """One family per metric name, one sample per seed (absent figures are left out, not faked)."""
    reports = list(reports)
    up = GaugeMetricFamily("nats_seed_up", "1 if the seed's monitoring endpoint answered", labels=["seed"])
    status = GaugeMetricFamily(
        "nats_seed_health_status", "Worst check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", labels=["seed"]
    )
    check = GaugeMetricFamily(
        "nats_seed_check_status",
        "Each check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        labels=["seed", "check"],
    )
    conns = GaugeMetricFamily("nats_seed_connections", "Current client connections", labels=["seed"])
    max_conns = GaugeMetricFamily("nats_seed_max_connections", "Configured max_connections", labels=["seed"])
    in_msgs = CounterMetricFamily("nats_seed_in_msgs", "Messages received by the server", labels=["seed"])
    out_msgs = CounterMetricFamily("nats_seed_out_msgs", "Messages sent by the server", labels=["seed"])
    slow = CounterMetricFamily(
        "nats_seed_slow_consumers", "Slow consumers since server start", labels=["seed"]
    )
    r_exp = GaugeMetricFamily("nats_seed_routes_expected", "Route peers the spec expects", labels=["seed"])
    r_live = GaugeMetricFamily("nats_seed_routes_live", "Route peers connected now", labels=["seed"])
    cert = GaugeMetricFamily(
        "nats_seed_tls_cert_expiry_seconds",
        "Seconds until the client TLS certificate expires",
        labels=["seed"],
    )
    drift = GaugeMetricFamily(
        "nats_seed_config_drift",
        "1 if the running config differs from what the spec renders now",
        labels=["seed"],
    )
    uptime = GaugeMetricFamily(
        "nats_seed_uptime_seconds", "Seconds since the server started", labels=["seed"]
    )
    mem = GaugeMetricFamily("nats_seed_memory_bytes", "Resident memory of the server", labels=["seed"])
    cpu = GaugeMetricFamily(
        "nats_seed_cpu_percent", "CPU use of the server (100 = one core)", labels=["seed"]
    )

    for rep in reports:
        f, lab = rep.figures, [rep.name]
        up.add_metric(lab, 1.0 if f.get("up") else 0.0)
        status.add_metric(lab, float(int(rep.status)))
        for res in rep.results:
            check.add_metric([rep.name, res.name], float(int(res.status)))
        for fam, key in (
            (conns, "connections"), (max_conns, "max_connections"), (in_msgs, "in_msgs"),
            (out_msgs, "out_msgs"), (slow, "slow_consumers"), (r_live, "routes_live"),
            (cert, "cert_expiry_s"), (uptime, "uptime_s"), (mem, "mem_bytes"), (cpu, "cpu_percent"),
        ):  # fmt: skip
            value = f.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                fam.add_metric(lab, float(value))
        r_exp.add_metric(lab, float(f.get("routes_expected") or 0))
        d = rep.check("config_drift")
        if d is not None and d.status.name in ("OK", "WARNING"):
            drift.add_metric(lab, 1.0 if d.status.name == "WARNING" else 0.0)
    families = [
        up,
        status,
        check,
        conns,
        max_conns,
        in_msgs,
        out_msgs,
        slow,
        r_exp,
        r_live,
        cert,
        drift,
        uptime,
        mem,
        cpu,
    ]
    return families + history_families(reports)


def history_families(reports: list[ServerReport]) -> list:
    """The history stream's gauges (spec `history:` only: none at all without it)."""
    with_history = [rep for rep in reports if "history_bytes" in rep.figures]
    if not with_history:
        return []
    fams = {
        "history_messages": GaugeMetricFamily(
            "nats_seed_history_messages",
            "Task events in this seed's replica of the history stream",
            labels=["seed"],
        ),
        "history_bytes": GaugeMetricFamily(
            "nats_seed_history_bytes", "Bytes in this seed's replica of the history stream", labels=["seed"]
        ),
        "history_max_bytes": GaugeMetricFamily(
            "nats_seed_history_max_bytes",
            "The history stream's max_bytes (spec history.max_bytes)",
            labels=["seed"],
        ),
        "history_leader": GaugeMetricFamily(
            "nats_seed_history_leader", "1 if this seed leads the history stream", labels=["seed"]
        ),
        "history_replica_current": GaugeMetricFamily(
            "nats_seed_history_replica_current",
            "1 if this seed's replica of the history stream is current (per its leader)",
            labels=["seed"],
        ),
    }
    for rep in with_history:
        for key, fam in fams.items():
            value = rep.figures.get(key)
            if isinstance(value, bool):
                value = 1.0 if value else 0.0
            if isinstance(value, int | float):
                fam.add_metric([rep.name], float(value))
    return list(fams.values())


class ReportsCollector(Collector):
    """A prometheus-client collector over whatever `source()` returns at scrape time."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        yield from metric_families(self.source())


def render_text(reports: Iterable[ServerReport]) -> str:
    """The text exposition format of `reports` alone (for `--format prometheus`)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    reports = list(reports)
    registry.register(ReportsCollector(lambda: reports))
    return generate_latest(registry).decode()
