"""The cache of global feed pages already built (`Store.query_federation_tasks_json`).

Dashboards poll the same few pages: a page is kept as JSON text, valid while the cache's
generation is unchanged. Any insert or delete of received rows calls `invalidate`, after the
in-memory counters are updated: a page is cached with the generation read before it was built, so
one built from rows or totals older than the last change is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

FEED_CACHE_PAGES = 64


class FeedCache:
    """Least recently used pages (key -> JSON text and total), dropped wholesale by `invalidate`."""

    def __init__(self, pages: int = FEED_CACHE_PAGES) -> None:
        self.pages = pages
        self._lock = threading.Lock()
        self._generation = 0
        self._cache: OrderedDict[tuple, tuple[int, str, int]] = OrderedDict()

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1

    def get(self, key: tuple) -> tuple[int, tuple[str, int] | None]:
        """(the current generation, the cached page or None): pass the generation to `put`."""
        with self._lock:
            generation = self._generation
            hit = self._cache.get(key)
            if hit is not None and hit[0] == generation:
                self._cache.move_to_end(key)
                return generation, (hit[1], hit[2])
            return generation, None

    def put(self, key: tuple, generation: int, page: tuple[str, int]) -> None:
        """Keep a page built at `generation` (one built before an invalidation is never served)."""
        with self._lock:
            self._cache[key] = (generation, *page)
            self._cache.move_to_end(key)
            while len(self._cache) > self.pages:
                self._cache.popitem(last=False)

    def __len__(self) -> int:
        return len(self._cache)
