"""Token buckets: per-sender receive limits (PROTOCOL.md §4) and the outbound limiter."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second up to `burst`; callers pass the clock so tests need no sleeping."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take `n` tokens if there are that many."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def wait_time(self, now: float, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 if now)."""
        self._refill(now)
        missing = n - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class BucketTable:
    """One bucket per (sender, kind); idle full buckets are forgotten so memory stays bounded."""

    def __init__(self, limits: dict[str, tuple[float, float]], max_entries: int = 50_000):
        self.limits = limits
        self.max_entries = max_entries
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def allow(self, sender: str, kind: str, now: float) -> bool:
        key = (sender, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_entries:
                self.prune(now)
            rate, burst = self.limits[kind]
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    def prune(self, now: float) -> int:
        """Forget buckets that have refilled (their sender has been quiet)."""
        stale = [k for k, b in self._buckets.items() if b.full(now)]
        for k in stale:
            del self._buckets[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._buckets)
