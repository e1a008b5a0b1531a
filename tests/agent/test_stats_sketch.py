"""The sketch buckets and the verdict rules as pure functions (no I/O): fast checks of the
stated error, the windows and every rule's boundary."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_agent.compare import (
    FAILURE_MARGIN,
    MIN_EVENTS,
    MIN_OTHER_NODES,
    Comparator,
    Figures,
    two_proportion_z,
    verdict,
)
from monitor_agent.stats_sketch import (
    BUFFER_VALUES,
    HOUR_MS,
    NETWORK_ACCURACY,
    Series,
    fraction_above,
    merge_all,
    quantile,
    window_start,
)

NOW = 1_800_000_000_000


def _exact(values, q):
    s = sorted(values)
    r = q * (len(s) - 1)
    return s[math.floor(r)], s[math.ceil(r)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1, max_value=3_600_000), min_size=1, max_size=400),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_window_quantiles_are_within_the_stated_relative_error(values, q):
    series = Series(NETWORK_ACCURACY)
    for i, v in enumerate(values):
        series.add(NOW - (i * 7_919) % HOUR_MS, v, False)  # spread over the hour's buckets
    start = window_start("1h", NOW)
    sketch = merge_all([b for _, b in series.buckets("1h", start, NOW)], NETWORK_ACCURACY)
    lo, hi = _exact(values, q)
    got = quantile(sketch, q)
    assert lo * (1 - NETWORK_ACCURACY) <= got <= hi * (1 + NETWORK_ACCURACY)


def test_buckets_past_the_buffer_become_sketches_with_the_same_answers():
    rng = random.Random(1)
    values = [rng.lognormvariate(6, 1) for _ in range(BUFFER_VALUES * 5)]
    series = Series(NETWORK_ACCURACY)
    for v in values:
        series.add(NOW, v, False)
    (_, bucket), *_ = series.buckets("1h", window_start("1h", NOW), NOW)
    assert bucket.sketch is not None and bucket.values is None
    lo, hi = _exact(values, 0.5)
    assert lo * 0.99 <= quantile(bucket.sketch, 0.5) <= hi * 1.01
    assert fraction_above(bucket.sketch, sorted(values)[len(values) // 4]) == pytest.approx(0.75, abs=0.02)


def test_windows_drop_old_events_and_keep_a_day_of_counts_for_the_baseline():
    series = Series(NETWORK_ACCURACY)
    series.add(NOW - 30 * HOUR_MS, 100, True)  # baseline day of the 24 h window
    series.add(NOW - 3 * HOUR_MS, 200, False)  # in 24 h, not in 1 h
    series.add(NOW - 60_000, 300, False)
    in_1h = series.buckets("1h", window_start("1h", NOW), NOW)
    in_24h = series.buckets("24h", window_start("24h", NOW), NOW)
    assert sum(b.completed for _, b in in_1h) == 1
    assert sum(b.completed for _, b in in_24h) == 2
    older = series.buckets("24h", window_start("24h", NOW) - 24 * HOUR_MS, window_start("24h", NOW) - 1)
    assert sum(b.failed for _, b in older) == 1
    # A day later everything is gone from the 1 h ring, and the 24 h ring forgets the oldest.
    series.add(NOW + 26 * HOUR_MS, 400, False)
    series.evict()  # the comparator's periodic sweep
    assert len(series.rings["1h"]) == 1
    assert all(s >= NOW + 26 * HOUR_MS - 49 * HOUR_MS for s in series.rings["24h"])


def _fig(completed, failed, p50=None):
    return Figures(completed=completed, failed=failed, p50=p50, minutes=60)


def test_the_floor_names_every_short_count():
    v = verdict(_fig(10, 0), _fig(20, 0), 2, [], (0, 0), None, "chain 1")
    assert v["verdict"] == "not_enough_data"
    assert v["text"] == (
        f"Not enough data on chain 1: 2 other nodes (need {MIN_OTHER_NODES}), 10 own events (need "
        f"{MIN_EVENTS}), 20 network events (need {MIN_EVENTS})."
    )


def test_failure_rule_needs_significance_and_the_margin():
    # 10 % vs 2 % on 100 vs 1000: significant and 8 points -> your node.
    v = verdict(_fig(90, 10), _fig(980, 20), 5, [0.02] * 5, (0, 0), None, "chain 1")
    assert v["verdict"] == "your_node" and v["rule"] == "own_failure_rate"
    assert v["numbers"]["failureZ"] == pytest.approx(two_proportion_z(10, 100, 20, 1000), abs=0.01)
    # 3 % vs 2 % on huge counts: significant, but under the 5-point margin -> in line.
    v = verdict(_fig(97_000, 3_000), _fig(980_000, 20_000), 5, [0.02] * 5, (0, 0), None, "chain 1")
    assert v["numbers"]["failureZ"] > 5 and v["verdict"] == "in_line"
    # 10 % vs 2 % on 30 vs 100 events: 8 points, but not significant at 1 % -> in line.
    v = verdict(_fig(27, 3), _fig(98, 2), 5, [0.02] * 5, (0, 0), None, "chain 1")
    assert v["numbers"]["failureZ"] < 2.326 and v["verdict"] == "in_line"


def test_network_rule_needs_a_baseline_and_most_nodes():
    spike = 0.02 + FAILURE_MARGIN + 0.2
    args = (_fig(60, 40), _fig(600, 400), 5)
    assert verdict(*args, [spike] * 5, (20, 1000), None, "c")["verdict"] == "the_network"
    # Only 2 of 5 nodes up: a few bad nodes, not the network.
    assert verdict(*args, [spike, spike, 0.02, 0.02, 0.02], (20, 1000), None, "c")["verdict"] == "in_line"
    # No baseline yet.
    assert verdict(*args, [spike] * 5, (0, 10), None, "c")["verdict"] == "in_line"


def test_slow_rule_uses_the_sign_test_and_the_ratio():
    net = _fig(1000, 0, p50=100.0)
    assert verdict(_fig(40, 0, 200.0), net, 5, [0] * 5, (0, 0), 0.9, "c")["rule"] == "own_slow"
    # Slower median, but only 55 % of 40 tasks above the network's median: could be chance.
    assert verdict(_fig(40, 0, 200.0), net, 5, [0] * 5, (0, 0), 0.55, "c")["verdict"] == "in_line"
    # Significant, but only 10 % slower: under the 1.25 ratio.
    assert verdict(_fig(400, 0, 110.0), net, 5, [0] * 5, (0, 0), 0.7, "c")["verdict"] == "in_line"


def test_local_tasks_count_once_and_late_execution_times_are_added():
    c = Comparator()
    c.add_local("e1", 1, "wasm", "completed", "running", None, NOW)
    c.add_local("e1", 1, "wasm", "completed", "completed", 250, NOW)  # metrics line after completion
    c.add_local("e1", 1, "wasm", "completed", "completed", 250, NOW)  # re-delivered: nothing new
    body = c.compare(1, None, "1h", now_ms=NOW)
    own = body["chains"][0]["own"]
    assert own["events"] == 1 and own["executionMs"]["p50"] == pytest.approx(250, rel=0.01)
