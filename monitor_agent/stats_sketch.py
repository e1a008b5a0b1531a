"""Mergeable quantile sketches in time buckets (DDSketch, from the `ddsketch` library).

Why DDSketch (`ddsketch`, Datadog's reference implementation): a stated *relative* error on
every quantile (a p99 of 800 ms is within ±1 % of the true one, not within some rank error),
sketches of the same accuracy merge exactly (a window is the merge of its buckets, the
network the merge of its nodes), and the package is pure Python whose only dependency is
`six` (protobuf is an optional extra we do not install), so the agent's memory bar holds.

A `Series` is the figures of one stream of terminal task events (one node, or the network,
for one chain and task type) in two bucket rings: 10-minute buckets for the 1 h window and
1-hour buckets for the 24 h window (kept 49 h: the 24 h window's failure-rate baseline is the
24 h before it). A bucket holds completed and failed counts and the completed tasks' execution
times: as a float32 array while it holds few (a per-node bucket holds tens: 256 values take
1 KB, a sketch of them about 1.5 KB and a Python call per value), turned into a sketch past
`BUFFER_VALUES`. Merging a listed value into a window's sketch is the same `add` the bucket's
sketch would have done, so the stated accuracy holds either way. Buckets older than their
ring's span are dropped as new ones arrive.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

# Network and own-node sketches: the accuracy the API states. Per-node sketches of the other
# nodes only place a node in the ranking, so they trade accuracy for a fifth of the bins.
NETWORK_ACCURACY = 0.01
NODE_ACCURACY = 0.05
BUFFER_VALUES = 256  # 1 KB of float32; a 5 % sketch of a node's hour costs more than that
_CHUNK = 16  # bins grow 16 at a time (the library's default 128 costs 1 KB per empty-ish bucket)
_MAPPINGS = {a: LogarithmicMapping(a) for a in (NETWORK_ACCURACY, NODE_ACCURACY)}

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# window name -> (length ms, bucket width ms)
WINDOWS = {"1h": (HOUR_MS, 10 * MINUTE_MS), "24h": (24 * HOUR_MS, HOUR_MS)}
# How long each ring keeps buckets: one window plus the bucket in progress; the 24 h ring
# keeps a second day of counts (sketches only for the first) for the baseline.
_KEEP_MS = {"1h": HOUR_MS + 10 * MINUTE_MS, "24h": 49 * HOUR_MS}
_SKETCH_KEEP_MS = {"1h": HOUR_MS + 10 * MINUTE_MS, "24h": 25 * HOUR_MS}
# Evict when a ring holds more buckets than its span can (one scan per bucket width, not per add).
_MAX_BUCKETS = {w: _KEEP_MS[w] // WINDOWS[w][1] + 1 for w in WINDOWS}
_MAX_SKETCH_BUCKETS = {w: _SKETCH_KEEP_MS[w] // WINDOWS[w][1] + 1 for w in WINDOWS}


def new_sketch(accuracy: float = NETWORK_ACCURACY) -> BaseDDSketch:
    """An empty DDSketch with the shared logarithmic mapping of `accuracy`."""
    return BaseDDSketch(
        mapping=_MAPPINGS[accuracy],
        store=DenseStore(chunk_size=_CHUNK),
        negative_store=DenseStore(chunk_size=_CHUNK),
        zero_count=0.0,
    )


def merge_all(buckets: Iterable[Bucket], accuracy: float) -> BaseDDSketch:
    """One sketch of every execution time in `buckets` (their sketches merged, listed values added)."""
    out = new_sketch(accuracy)
    for b in buckets:
        if b.sketch is not None:
            out.merge(b.sketch)
        elif b.values:
            add = out.add
            for v in b.values:
                add(v)
    return out


def quantile(sketch: BaseDDSketch | None, q: float) -> float | None:
    if sketch is None or not sketch.count:
        return None
    return sketch.get_quantile_value(q)


def _value_at(sketch: BaseDDSketch, q: float) -> float:
    """A quantile of a non-empty sketch (ddsketch types it Optional: None only when empty)."""
    value = sketch.get_quantile_value(q)
    assert value is not None
    return value


def fraction_above(sketch: BaseDDSketch, value: float) -> float:
    """The share of the sketch's values above `value` (bisection on its quantiles, ±1/count)."""
    n = sketch.count
    if not n:
        return 0.0
    if _value_at(sketch, 1.0) <= value:
        return 0.0
    if _value_at(sketch, 0.0) > value:
        return 1.0
    lo, hi = 0.0, 1.0  # quantile(lo) <= value < quantile(hi)
    for _ in range(max(8, math.ceil(math.log2(n + 1)) + 1)):
        mid = (lo + hi) / 2
        if _value_at(sketch, mid) <= value:
            lo = mid
        else:
            hi = mid
    return 1.0 - hi


@dataclass(slots=True)
class Bucket:
    completed: int = 0
    failed: int = 0
    values: array | None = None  # float32: 4 bytes a value, ~1e-7 relative, far inside the sketch's error
    sketch: BaseDDSketch | None = None

    def add_value(self, value: float, accuracy: float) -> None:
        if self.sketch is not None:
            self.sketch.add(value)
            return
        if self.values is None:
            self.values = array("f", (value,))
            return
        self.values.append(value)
        if len(self.values) > BUFFER_VALUES:
            self.sketch = new_sketch(accuracy)
            for v in self.values:
                self.sketch.add(v)
            self.values = None

    def drop_values(self) -> None:
        self.values = self.sketch = None


class Series:
    """One stream's buckets for both windows (not thread-safe: the caller holds a lock)."""

    __slots__ = ("accuracy", "rings", "last_ms", "keep", "max_buckets")

    def __init__(self, accuracy: float = NETWORK_ACCURACY, *, baseline: bool = True):
        """`baseline`: keep the second day of counts (the network's series only need it)."""
        self.accuracy = accuracy
        self.keep = _KEEP_MS if baseline else _SKETCH_KEEP_MS
        self.max_buckets = _MAX_BUCKETS if baseline else _MAX_SKETCH_BUCKETS
        self.rings: dict[str, dict[int, Bucket]] = {w: {} for w in WINDOWS}
        self.last_ms = 0

    def add(self, at_ms: int, execution_ms: float | None, failed: bool) -> None:
        if at_ms > self.last_ms:
            self.last_ms = at_ms
        for window, (_, width) in WINDOWS.items():
            ring = self.rings[window]
            start = at_ms - at_ms % width
            bucket = ring.get(start)
            if bucket is None:
                if start < self.last_ms - self.keep[window]:
                    continue  # older than the ring keeps
                bucket = ring[start] = Bucket()
                if len(ring) > self.max_buckets[window]:
                    self.evict(window)
            if failed:
                bucket.failed += 1
            else:
                bucket.completed += 1
                if execution_ms is not None and start >= self.last_ms - _SKETCH_KEEP_MS[window]:
                    bucket.add_value(max(0.0, float(execution_ms)), self.accuracy)

    def evict(self, window: str | None = None) -> None:
        """Drop buckets older than the ring keeps (and values older than its sketches keep).

        `add` does it when a ring overflows its bucket count; the comparator's sweep does it
        for every series now and then, so a quiet series lets go of its memory too."""
        if window is None:
            for w in WINDOWS:
                self.evict(w)
            return
        ring = self.rings[window]
        oldest = self.last_ms - self.keep[window]
        sketch_oldest = self.last_ms - _SKETCH_KEEP_MS[window]
        for start in list(ring):
            if start < oldest:
                del ring[start]
            elif start < sketch_oldest:
                ring[start].drop_values()

    def buckets(self, window: str, start_ms: int, end_ms: int) -> list[tuple[int, Bucket]]:
        """The buckets of `window`'s ring whose start is in [start_ms, end_ms], oldest first."""
        ring = self.rings[window]
        return sorted((s, b) for s, b in ring.items() if start_ms <= s <= end_ms)

    def empty(self) -> bool:
        return not any(self.rings.values())


def window_start(window: str, now_ms: int) -> int:
    """The start of the bucket holding now − window: a 1 h window covers 60–70 min, 24 h 24–25 h."""
    length, width = WINDOWS[window]
    t = now_ms - length
    return t - t % width


def bucket_width(window: str) -> int:
    return WINDOWS[window][1]
