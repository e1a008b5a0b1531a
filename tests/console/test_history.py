"""The SQLite history on its own: bucketing for charts, retention, alert tracking (real SQLite file)."""

from __future__ import annotations

import time

from seed.console.history import History
from seed.console.sparkline import sparkline
from seed.health import CheckResult, Sample, ServerReport, Status


def report(name: str, connections: int, *failing: tuple[str, Status, str]) -> ServerReport:
    results = [CheckResult("reachable", Status.OK, "ok")]
    results += [CheckResult(check, status, reason) for check, status, reason in failing]
    figures = {"up": True, "connections": connections, "max_connections": 100, "mem_bytes": 1 << 20}
    return ServerReport(name, "http://x", Sample(name, "http://x", 0.0), results, figures)


def test_series_is_bucketed_for_24h_charts(tmp_path):
    h = History(tmp_path / "h.db")
    now = time.time()
    for i in range(1440):  # 24 h of one-minute samples
        h.record(now - 86400 + i * 60, [report("a", i % 7)])
    points = h.series("a", "connections", now - 86400)
    assert 200 <= len(points) <= 241
    assert all(0 <= v <= 6 for _, v in points)
    assert len(h.series("a", "connections", now - 3600)) >= 59  # 1 h window: one point per sample
    assert h.series("b", "connections", now - 3600) == []


def test_prune_keeps_the_retention_window(tmp_path):
    h = History(tmp_path / "h.db", retention_days=7)
    now = time.time()
    h.record(now - 8 * 86400, [report("a", 1)])
    h.record(now - 6 * 86400, [report("a", 2)])
    assert h.prune(now) == 1
    assert h.sample_count("a") == 1


def test_alerts_open_update_and_resolve(tmp_path):
    h = History(tmp_path / "h.db")
    h.record(100.0, [report("a", 1, ("topology", Status.CRITICAL, "missing routes to b"))])
    h.record(110.0, [report("a", 1, ("topology", Status.CRITICAL, "missing routes to b, c"))])
    (alert,) = h.open_alerts()
    assert (alert["first_seen"], alert["last_seen"], alert["reason"]) == (
        100.0,
        110.0,
        "missing routes to b, c",
    )
    h.record(120.0, [report("a", 1)])
    assert h.open_alerts() == []
    assert h.recent_alerts(0)[0]["resolved_at"] == 120.0


def test_sparkline_scales_into_the_box_and_escapes_its_label():
    svg = str(sparkline([(0, 0.0), (5, 10.0), (10, 5.0)], label="<b>conns</b>", width=100, height=20))
    assert 'points="2.0,18.0 50.0,2.0 98.0,10.0"' in svg
    assert "<b>" not in svg and "&lt;b&gt;conns&lt;/b&gt;: now 5, min 0, max 10" in svg
    assert "no data yet" in str(sparkline([], label="x"))
