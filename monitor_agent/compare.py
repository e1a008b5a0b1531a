"""Me vs network ("is it me or the network?"): this node's tasks measured against the federation's.

`Comparator` keeps, per chain and task type, the time-bucketed sketches of `stats_sketch`
for the network (every received terminal event), for each other node, and for this node (its
local tasks). It is fed as rows are stored (`add_federation_rows`, `add_local_task`), seeded
once at start-up from SQLite (`rebuild`, bounded), and answers `compare(chain, type, window)`
from memory — never by scanning rows per request. `verdict()` is the pure rule set of
docs/compare.md; every verdict carries the numbers it rests on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .stats_sketch import (
    NETWORK_ACCURACY,
    NODE_ACCURACY,
    WINDOWS,
    Series,
    bucket_width,
    fraction_above,
    merge_all,
    quantile,
    window_start,
)
from .timestamps import rfc3339
from .web import shapes

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

# The statistical floor and the rules (docs/compare.md).
MIN_OTHER_NODES = 3
MIN_EVENTS = 30
Z_CRITICAL = 2.326  # one-sided 1 % significance
FAILURE_MARGIN = 0.05  # a failure-rate difference must also be at least 5 percentage points
SLOW_RATIO = 1.25  # own p50 at least 25 % above the network's
NODE_MIN_EVENTS = 5  # a node takes part in the ranking and the "most nodes" count from 5 events
MOST_NODES = 0.5  # "most nodes": more than half

# Bounds: how many rows the start-up rebuild reads, how many other-node series are tracked.
REBUILD_MAX_ROWS = 2_000_000
MAX_NODE_SERIES = 1_500
MAX_NETWORK_SERIES = 200  # chain x task type pairs (a hostile peer could invent many)
# How old an answer may be before a background refresh: a day's figures move slowly.
CACHE_S = {"1h": 5.0, "24h": 60.0}
CacheKey = tuple[int | None, str | None, str]  # (chainId, taskType, window) of a cached answer
VERDICTS = ("not_enough_data", "in_line", "your_node", "the_network")

_TERMINAL = {"task_completed": False, "task_failed": True}


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """z of p1 − p2 with the pooled standard error (None when undefined)."""
    if not n1 or not n2:
        return None
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    return (x1 / n1 - x2 / n2) / se


def sign_test_z(above: float, n: int) -> float | None:
    """z of `above` of `n` values lying above a median, against the 1/2 expected by chance."""
    if not n:
        return None
    return (above - n / 2) / math.sqrt(n / 4)


def _rate(failed: int, events: int) -> float | None:
    return failed / events if events else None


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class Figures:
    """One stream's figures over a window (the API's `own` / `network` objects)."""

    completed: int = 0
    failed: int = 0
    nodes: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    minutes: float = 0.0

    @property
    def events(self) -> int:
        return self.completed + self.failed

    @property
    def failure_rate(self) -> float | None:
        return _rate(self.failed, self.events)

    def api(self, nodes: int | msgspec.UnsetType = msgspec.UNSET) -> shapes.CompareFigures:
        return shapes.CompareFigures(
            events=self.events,
            completed=self.completed,
            failed=self.failed,
            failure_rate=_r(self.failure_rate, 4),
            tasks_per_minute=round(self.events / self.minutes, 3) if self.minutes else 0.0,
            execution_ms=shapes.ExecutionMs(p50=_r(self.p50), p90=_r(self.p90), p99=_r(self.p99)),
            nodes=nodes,
        )


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def verdict(
    own: Figures,
    network: Figures,
    other_nodes: int,
    node_rates: list[float],
    baseline: tuple[int, int],
    own_above_network_p50: float | None,
    label: str,
) -> dict[str, Any]:
    """The rule set of docs/compare.md (pure). `baseline` is (failed, events) before the window."""
    numbers: dict[str, Any] = {
        "otherNodes": other_nodes,
        "ownEvents": own.events,
        "networkEvents": network.events,
    }
    short = []
    if other_nodes < MIN_OTHER_NODES:
        short.append(f"{other_nodes} other nodes (need {MIN_OTHER_NODES})")
    if own.events < MIN_EVENTS:
        short.append(f"{own.events} own events (need {MIN_EVENTS})")
    if network.events < MIN_EVENTS:
        short.append(f"{network.events} network events (need {MIN_EVENTS})")
    if short:
        return {
            "verdict": "not_enough_data",
            "rule": "floor",
            "text": f"Not enough data on {label}: " + ", ".join(short) + ".",
            "numbers": numbers,
        }
    own_rate, net_rate = own.failure_rate or 0.0, network.failure_rate or 0.0
    z_fail = two_proportion_z(own.failed, own.events, network.failed, network.events)
    numbers.update(
        ownFailed=own.failed,
        ownFailureRate=_r(own_rate, 4),
        networkFailed=network.failed,
        networkFailureRate=_r(net_rate, 4),
        failureZ=_r(z_fail, 2),
    )
    # Rule 1: this node fails significantly (and materially) more often than the network.
    if z_fail is not None and z_fail >= Z_CRITICAL and own_rate - net_rate >= FAILURE_MARGIN:
        return {
            "verdict": "your_node",
            "rule": "own_failure_rate",
            "text": (
                f"Your node: it failed {_pct(own_rate)} of its tasks on {label} ({own.failed} of "
                f"{own.events}), the network {_pct(net_rate)} ({network.failed} of {network.events}); "
                f"z = {z_fail:.1f}, significant at 1 %."
            ),
            "numbers": numbers,
        }
    # Rule 2: the network's failure rate rose above its own baseline, across most nodes.
    base_failed, base_events = baseline
    base_rate = _rate(base_failed, base_events)
    z_spike = two_proportion_z(network.failed, network.events, base_failed, base_events)
    up = sum(1 for r in node_rates if base_rate is not None and r - base_rate >= FAILURE_MARGIN)
    numbers.update(
        baselineFailed=base_failed,
        baselineEvents=base_events,
        baselineFailureRate=_r(base_rate, 4),
        spikeZ=_r(z_spike, 2),
        nodesUp=up,
        nodesCounted=len(node_rates),
    )
    if (
        base_events >= MIN_EVENTS
        and z_spike is not None
        and z_spike >= Z_CRITICAL
        and net_rate - (base_rate or 0.0) >= FAILURE_MARGIN
        and node_rates
        and up > MOST_NODES * len(node_rates)
    ):
        return {
            "verdict": "the_network",
            "rule": "network_failure_spike",
            "text": (
                f"The network: its failure rate on {label} is {_pct(net_rate)} ({network.failed} of "
                f"{network.events}) against {_pct(base_rate)} before ({base_failed} of {base_events}); "
                f"z = {z_spike:.1f}, and {up} of {len(node_rates)} nodes are up by 5 points or more."
            ),
            "numbers": numbers,
        }
    # Rule 3: this node's executions are significantly slower than the network's median.
    n_exec = own.completed
    z_slow = None
    if own_above_network_p50 is not None and network.p50 and own.p50:
        z_slow = sign_test_z(own_above_network_p50 * n_exec, n_exec)
        numbers.update(
            ownP50Ms=_r(own.p50),
            networkP50Ms=_r(network.p50),
            ownAboveNetworkP50=_r(own_above_network_p50, 3),
            slowZ=_r(z_slow, 2),
        )
        if z_slow is not None and z_slow >= Z_CRITICAL and own.p50 >= SLOW_RATIO * network.p50:
            return {
                "verdict": "your_node",
                "rule": "own_slow",
                "text": (
                    f"Your node: its median execution time on {label} is {own.p50:.0f} ms, the network's "
                    f"{network.p50:.0f} ms; {own_above_network_p50 * 100:.0f} % of its tasks took longer "
                    f"than the network's median (sign test z = {z_slow:.1f}, significant at 1 %)."
                ),
                "numbers": numbers,
            }
    return {
        "verdict": "in_line",
        "rule": "none",
        "text": (
            f"In line with the network on {label}: failures {_pct(own_rate)} vs {_pct(net_rate)}"
            + (f", median {own.p50:.0f} ms vs {network.p50:.0f} ms" if own.p50 and network.p50 else "")
            + "."
        ),
        "numbers": numbers,
    }


def _key_matches(key_chain: int, key_type: str, chain_id: int, task_type: str | None) -> bool:
    return key_chain == chain_id and (task_type is None or key_type == task_type)


class Comparator:
    """The live comparison state of one agent (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.network: dict[tuple[int, str], Series] = {}
        self.own: dict[tuple[int, str], Series] = {}
        self.nodes: OrderedDict[tuple[str, int, str], Series] = OrderedDict()
        self._cache: dict[CacheKey, tuple[float, dict[str, Any], bytes]] = {}
        self._compute_lock = threading.Lock()
        self._pending_exec: OrderedDict[str, tuple[int, int, str]] = OrderedDict()
        self.events_added = 0
        self.node_series_evicted = 0
        self.seeding = False

    # ---- feeding ----

    def add_federation(
        self, node_id: str, chain_id: int, task_type: str, event: str, execution_ms: int | None, at_ms: int
    ) -> None:
        failed = _TERMINAL.get(event)
        if failed is None:
            return
        with self._lock:
            self._add_network(node_id, chain_id, task_type, failed, execution_ms, at_ms)

    def _add_network(self, node_id, chain_id, task_type, failed, execution_ms, at_ms) -> None:
        key = (chain_id, task_type)
        series = self.network.get(key)
        if series is None:
            if len(self.network) >= MAX_NETWORK_SERIES:
                # Evict the pair heard from least recently.
                del self.network[min(self.network, key=lambda k: self.network[k].last_ms)]
            series = self.network[key] = Series(NETWORK_ACCURACY)
        series.add(at_ms, execution_ms, failed)
        nkey = (node_id, chain_id, task_type)
        node = self.nodes.get(nkey)
        if node is None:
            node = self.nodes[nkey] = Series(NODE_ACCURACY, baseline=False)
            if len(self.nodes) > MAX_NODE_SERIES:
                self.nodes.popitem(last=False)  # the least recently heard-from series
                self.node_series_evicted += 1
        else:
            self.nodes.move_to_end(nkey)
        node.add(at_ms, execution_ms, failed)
        self.events_added += 1

    def add_federation_rows(self, rows: list) -> None:
        """The store's `on_federation_stored` rows (`FederationTaskRow`)."""
        with self._lock:
            for r in rows:
                failed = _TERMINAL.get(r.event)
                if failed is not None:
                    self._add_network(
                        r.source_node, r.chain_id, r.task_type, failed, r.execution_time_ms, r.received_at
                    )

    def add_local(
        self,
        execution_id: str,
        chain_id: int | None,
        task_type: str | None,
        status: str,
        old_status: str | None,
        execution_ms: int | None,
        at_ms: int,
    ) -> None:
        """A local task row after a change: counted once, when it first reaches completed/failed."""
        if chain_id is None or not task_type:
            return
        with self._lock:
            if status in ("completed", "failed") and old_status not in ("completed", "failed"):
                self._own(chain_id, task_type).add(at_ms, execution_ms, status == "failed")
                if status == "completed" and execution_ms is None:
                    # Metrics often arrive after the completion line: add the time when it does.
                    self._pending_exec[execution_id] = (at_ms, chain_id, task_type)
                    while len(self._pending_exec) > 1000:
                        self._pending_exec.popitem(last=False)
            elif status == "completed" and execution_ms is not None and execution_id in self._pending_exec:
                at, chain, ttype = self._pending_exec.pop(execution_id)
                series = self._own(chain, ttype)
                for window, (_, width) in WINDOWS.items():
                    bucket = series.rings[window].get(at - at % width)
                    if bucket is not None:
                        bucket.add_value(float(execution_ms), series.accuracy)

    def _own(self, chain_id: int, task_type: str) -> Series:
        series = self.own.get((chain_id, task_type))
        if series is None:
            series = self.own[(chain_id, task_type)] = Series(NETWORK_ACCURACY, baseline=False)
        return series

    def clear_federation(self) -> None:
        with self._lock:
            self.network.clear()
            self.nodes.clear()
            self._cache.clear()

    def federation_mark(self, store: Store) -> int:
        """The highest received row id now: rows after it arrive through `add_federation_rows`.

        `seeding` is true from here until `rebuild_federation` has read the rows up to it.
        """
        self.seeding = True
        return store.read("SELECT COALESCE(MAX(id), 0) FROM federation_tasks").fetchone()[0]

    def rebuild_local(self, store: Store, now_ms: int | None = None) -> int:
        """Seed this node's series from its local tasks of the last 25 h."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        rows = store.read(
            "SELECT chain_id, task_type, status, execution_time_ms, COALESCE(finished_at, updated_at) AS at "
            "FROM tasks WHERE status IN ('completed', 'failed') AND COALESCE(finished_at, updated_at) >= ? "
            "AND chain_id IS NOT NULL AND task_type IS NOT NULL ORDER BY at LIMIT ?",
            (now_ms - 25 * 3_600_000, REBUILD_MAX_ROWS),
        ).fetchall()
        with self._lock:
            for chain_id, task_type, status, exec_ms, at in rows:
                self._own(chain_id, task_type).add(at, exec_ms, status == "failed")
        return len(rows)

    def rebuild_federation(
        self, store: Store, up_to_id: int, now_ms: int | None = None, stop: threading.Event | None = None
    ) -> int:
        """Seed from the received terminal events with id <= `up_to_id` of the last 49 h, newest
        first and at most REBUILD_MAX_ROWS; runs in a background thread (`seeding` meanwhile)
        until done or `stop` is set (the agent stopping: it closes the store after)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.seeding = True
        t0 = time.perf_counter()
        n = 0
        try:
            cursor = store.read(
                "SELECT source_node, chain_id, task_type, event, execution_time_ms, received_at "
                "FROM federation_tasks WHERE received_at >= ? AND id <= ? "
                "AND event IN ('task_completed', 'task_failed') ORDER BY received_at DESC LIMIT ?",
                (now_ms - 49 * 3_600_000, up_to_id, REBUILD_MAX_ROWS),
            )
            while True:
                batch = cursor.fetchmany(1000)
                if not batch or (stop is not None and stop.is_set()):
                    break
                with self._lock:
                    for node_id, chain_id, task_type, event, exec_ms, at in batch:
                        self._add_network(node_id, chain_id, task_type, event == "task_failed", exec_ms, at)
                n += len(batch)
                time.sleep(0)  # let request threads in between batches
        finally:
            self.seeding = False
            self._cache.clear()
        log.info("compare: seeded from %d received events in %.1f s", n, time.perf_counter() - t0)
        return n

    def sweep(self, now_ms: int) -> None:
        """Drop series with nothing in the last 49 h and every series' expired buckets."""
        horizon = now_ms - 49 * 3_600_000
        with self._lock:
            tables: tuple[dict[Any, Series], ...] = (self.network, self.own, self.nodes)
            for table in tables:
                for key in [k for k, s in table.items() if s.last_ms < horizon]:
                    del table[key]
                for series in table.values():
                    series.evict()

    # ---- answering ----

    def chains(self) -> list[int]:
        with self._lock:
            return sorted({c for c, _ in self.network} | {c for c, _ in self.own})

    def compare(
        self, chain_id: int | None, task_type: str | None, window: str, now_ms: int | None = None
    ) -> dict[str, Any]:
        """The /api/compare body, at most CACHE_S[window] old plus one computation.

        A stale answer is served while one background thread computes the next one, so a
        request never waits for a computation except the very first for its parameters.
        `now_ms` (tests) computes afresh for that instant, bypassing the cache.
        """
        if now_ms is not None:
            with self._compute_lock:
                return msgspec.to_builtins(self._compute(chain_id, task_type, window, now_ms))
        return self._cached((chain_id, task_type, window))[1]

    def fresh(self, chain_id: int | None, task_type: str | None, window: str) -> dict[str, Any]:
        """Compute now (waiting for a running computation) and cache: for the agent's ticker,
        which publishes `federation_compare` and so keeps the API's most asked answer warm."""
        with self._compute_lock:
            return self._refresh((chain_id, task_type, window))[1]

    def compare_json(self, chain_id: int | None, task_type: str | None, window: str) -> bytes:
        """The same body as JSON, encoded once per computation (the API's hot path)."""
        return self._cached((chain_id, task_type, window))[2]

    def _cached(self, key: CacheKey) -> tuple[float, dict[str, Any], bytes]:
        hit = self._cache.get(key)
        if hit is None:
            with self._compute_lock:
                hit = self._cache.get(key)
                if hit is None:
                    return self._refresh(key)
            return hit
        if time.monotonic() - hit[0] >= CACHE_S[key[2]] and self._compute_lock.acquire(blocking=False):
            threading.Thread(
                target=self._refresh_locked, args=(key,), name="compare-refresh", daemon=True
            ).start()
        return hit

    def _refresh_locked(self, key: CacheKey) -> None:
        try:
            self._refresh(key)
        except Exception:
            log.exception("compare: refreshing %s failed", key)
        finally:
            self._compute_lock.release()

    def _refresh(self, key: CacheKey) -> tuple[float, dict[str, Any], bytes]:
        """Compute and cache (the caller holds `_compute_lock`)."""
        body = self._compute(*key, None)
        entry = (time.monotonic(), msgspec.to_builtins(body), msgspec.json.encode(body))
        self._cache[key] = entry
        while len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        return entry

    def _compute(
        self, chain_id: int | None, task_type: str | None, window: str, now_ms: int | None
    ) -> shapes.Compare:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        start = window_start(window, now_ms)
        chains = [chain_id] if chain_id is not None else self.chains()
        with self._lock:
            rows = [self._chain(c, task_type, window, start, now_ms) for c in chains]
        return shapes.Compare(
            window=window,  # type: ignore[arg-type]  # validated by the API (COMPARE_WINDOWS)
            window_start=_iso(start),
            generated_at=_iso(now_ms),
            task_type=task_type,
            seeding=self.seeding,
            sketch=shapes.Sketch(
                algorithm="DDSketch", relative_accuracy=NETWORK_ACCURACY, node_relative_accuracy=NODE_ACCURACY
            ),
            rules=shapes.CompareRules(
                min_other_nodes=MIN_OTHER_NODES,
                min_events=MIN_EVENTS,
                z_critical=Z_CRITICAL,
                failure_margin=FAILURE_MARGIN,
                slow_ratio=SLOW_RATIO,
            ),
            chains=rows,
        )

    def _window_figures(
        self, series_list: list[Series], window: str, start: int, now_ms: int, accuracy: float
    ) -> tuple[Figures, Any, dict[int, list]]:
        fig = Figures(minutes=max(1.0, (now_ms - start) / 60_000))
        buckets = []
        per_bucket: dict[int, list] = {}
        for s in series_list:
            for b_start, b in s.buckets(window, start, now_ms):
                fig.completed += b.completed
                fig.failed += b.failed
                buckets.append(b)
                slot = per_bucket.setdefault(b_start, [0, 0, []])
                slot[0] += b.completed
                slot[1] += b.failed
                slot[2].append(b)
        merged = merge_all(buckets, accuracy)
        fig.p50, fig.p90, fig.p99 = (quantile(merged, q) for q in (0.5, 0.9, 0.99))
        return fig, merged, per_bucket

    @staticmethod
    def _node_figures(series_list: list[Series], window: str, start: int, now_ms: int) -> Figures:
        """An other node's counts and p50 (all the ranking needs). A quiet node's buckets hold
        raw values: its median is then exact, by one C sort instead of a sketch per bucket."""
        fig = Figures()
        buckets = []
        for s in series_list:
            for _, b in s.buckets(window, start, now_ms):
                fig.completed += b.completed
                fig.failed += b.failed
                buckets.append(b)
        if any(b.sketch is not None for b in buckets):
            fig.p50 = quantile(merge_all(buckets, NODE_ACCURACY), 0.5)
        else:
            values = sorted(v for b in buckets if b.values for v in b.values)
            if values:
                fig.p50 = values[(len(values) - 1) // 2]
        return fig

    def _chain(
        self, chain_id: int, task_type: str | None, window: str, start: int, now_ms: int
    ) -> shapes.CompareChain:
        label = f"chain {chain_id}" + (f" ({task_type})" if task_type else "")
        net_series = [s for (c, t), s in self.network.items() if _key_matches(c, t, chain_id, task_type)]
        own_series = [s for (c, t), s in self.own.items() if _key_matches(c, t, chain_id, task_type)]
        network, _, net_buckets = self._window_figures(net_series, window, start, now_ms, NETWORK_ACCURACY)
        own, own_sketch, own_buckets = self._window_figures(
            own_series, window, start, now_ms, NETWORK_ACCURACY
        )
        # Per node: its figures in the window (task types of one node merged).
        per_node: dict[str, list[Series]] = {}
        for (node_id, c, t), s in self.nodes.items():
            if _key_matches(c, t, chain_id, task_type):
                per_node.setdefault(node_id, []).append(s)
        node_figs = []
        for series_list in per_node.values():
            fig = self._node_figures(series_list, window, start, now_ms)
            if fig.events:
                node_figs.append(fig)
        network.nodes = len(node_figs)
        ranked = [f.p50 for f in node_figs if f.completed >= NODE_MIN_EVENTS and f.p50 is not None]
        rank: shapes.Rank | None = None
        if own.p50 is not None and ranked:
            own_p50 = own.p50
            faster = sum(1 for p50 in ranked if p50 < own_p50)
            pct = round(100 * faster / len(ranked))
            rank = shapes.Rank(
                metric="p50ExecutionMs",
                slower_than_pct=pct,
                nodes=len(ranked),
                text=f"Your p50 execution time on {label} is slower than {pct} % of {len(ranked)} nodes.",
            )
        # (a node with events has a failure rate)
        rated = [r for f in node_figs if f.events >= NODE_MIN_EVENTS and (r := f.failure_rate) is not None]
        # Baseline: the network's counts in the 24 h (window 1 h) or the day (window 24 h) before.
        base_failed = base_events = 0
        base_end = start - 1
        base_start = start - (23 if window == "1h" else 24) * 3_600_000
        for s in net_series:
            for b_start, b in s.buckets("24h", base_start, base_end):
                if b_start + 3_600_000 <= start:
                    base_failed += b.failed
                    base_events += b.completed + b.failed
        above = None
        if network.p50 is not None and own_sketch.count:
            above = fraction_above(own_sketch, network.p50)
        v = verdict(own, network, network.nodes, rated, (base_failed, base_events), above, label)
        width = bucket_width(window)
        series = []
        for b_start in range(start, now_ms + 1, width):
            nb = net_buckets.get(b_start)
            ob = own_buckets.get(b_start)
            series.append(
                shapes.SeriesPoint(
                    t=_iso(b_start),
                    network_p50=_r(quantile(merge_all(nb[2], NETWORK_ACCURACY), 0.5)) if nb else None,
                    own_p50=_r(quantile(merge_all(ob[2], NETWORK_ACCURACY), 0.5)) if ob else None,
                    network_failure_rate=_r(_rate(nb[1], nb[0] + nb[1]), 4) if nb else None,
                    own_failure_rate=_r(_rate(ob[1], ob[0] + ob[1]), 4) if ob else None,
                )
            )
        return shapes.CompareChain(
            chain_id=chain_id,
            own=own.api(),
            network=network.api(nodes=network.nodes),
            rank=rank,
            verdict=shapes.Verdict(**v),
            series=series,
        )


def _iso(ms: int) -> str:
    return rfc3339(ms / 1000)


VERDICT_CODES = {v: i for i, v in enumerate(VERDICTS)}
MAX_METRIC_CHAINS = 20


class CompareCollector:
    """Me-vs-network gauges per chain (1 h window, task types merged), read at scrape time.

    Low cardinality: the `chain` label only, and at most MAX_METRIC_CHAINS chains (the busiest).
    """

    def __init__(self, comparator: Comparator):
        self.comparator = comparator

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"monitor_agent_compare_{name}", doc, labels=["chain"])

        g = {
            "verdict": gauge(
                "verdict",
                "Me vs network verdict, 1 h: 0 not enough data, 1 in line, 2 your node, 3 the network",
            ),
            "enough": gauge("enough_data", "1 when the 1 h window passes the statistical floor"),
            "own_rate": gauge("own_failure_rate", "This node's failure rate over 1 h (failed / terminal)"),
            "net_rate": gauge("network_failure_rate", "The other nodes' failure rate over 1 h"),
            "base_rate": gauge(
                "network_baseline_failure_rate", "The network's failure rate in the 23 h before the window"
            ),
            "rate_ratio": gauge("failure_rate_ratio", "Own failure rate / network failure rate (1 h)"),
            "p50": gauge("execution_p50_ratio", "Own p50 execution time / the network's (1 h)"),
            "p90": gauge("execution_p90_ratio", "Own p90 execution time / the network's (1 h)"),
            "nodes": gauge("other_nodes", "Other nodes with terminal events in the 1 h window"),
            "own_events": gauge("own_events", "This node's terminal task events in the 1 h window"),
            "net_events": gauge("network_events", "The other nodes' terminal task events in the 1 h window"),
        }
        try:
            body = self.comparator.compare(None, None, "1h")
        except Exception:
            log.warning("metrics: comparison unavailable", exc_info=True)
            return
        chains = sorted(body["chains"], key=lambda c: -c["network"]["events"])[:MAX_METRIC_CHAINS]
        for c in chains:
            label = [str(c["chainId"])]
            own, net, numbers = c["own"], c["network"], c["verdict"]["numbers"]
            g["verdict"].add_metric(label, VERDICT_CODES[c["verdict"]["verdict"]])
            g["enough"].add_metric(label, int(c["verdict"]["verdict"] != "not_enough_data"))
            g["nodes"].add_metric(label, net["nodes"])
            g["own_events"].add_metric(label, own["events"])
            g["net_events"].add_metric(label, net["events"])
            if own["failureRate"] is not None:
                g["own_rate"].add_metric(label, own["failureRate"])
            if net["failureRate"] is not None:
                g["net_rate"].add_metric(label, net["failureRate"])
                if own["failureRate"] is not None and net["failureRate"] > 0:
                    g["rate_ratio"].add_metric(label, own["failureRate"] / net["failureRate"])
            if numbers.get("baselineFailureRate") is not None:
                g["base_rate"].add_metric(label, numbers["baselineFailureRate"])
            for q, name in (("p50", "p50"), ("p90", "p90")):
                o, n = own["executionMs"][q], net["executionMs"][q]
                if o is not None and n:
                    g[name].add_metric(label, o / n)
        yield from g.values()
