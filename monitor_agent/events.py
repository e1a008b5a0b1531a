"""In-process event bus: the agent publishes, WebSocket clients subscribe.

Contract:
  - `EventBus.publish(type, data)` never blocks and never raises; every open subscription
    gets `{"type": type, "data": data}`.
  - `EventBus.subscribe(maxsize=256) -> Subscription`. `Subscription.get(timeout) -> dict | None`
    (None on timeout or once closed), `.closed`, `.close_reason`, `.close(reason)`.
  - A subscriber whose queue is full when an event arrives is closed with reason
    "client too slow": memory never grows with a stalled reader.

Types used by the agent: federation_task, federation_stats, federation_status,
federation_error ({code, message, at}), local_task, federation_compare (the /api/compare
body for 1 h, when it changed, at most every 6 s).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

TOO_SLOW = "client too slow"


class Subscription:
    """A bounded FIFO of events for one reader (one WebSocket client)."""

    __slots__ = ("_bus", "_cond", "_items", "maxsize", "closed", "close_reason")

    def __init__(self, bus: EventBus | None, maxsize: int):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._bus = bus
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[dict[str, Any]] = deque()
        self.maxsize = maxsize
        self.closed = False
        self.close_reason: str | None = None

    def _offer(self, event: dict[str, Any]) -> bool:
        """Queue one event; close (instead of growing) when full. False if now closed."""
        with self._cond:
            if self.closed:
                return False
            if len(self._items) >= self.maxsize:
                self._close_locked(TOO_SLOW)
                return False
            self._items.append(event)
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None after `timeout` seconds or once the subscription is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self.closed:
                # A closed subscription delivers nothing more: its reader is going away.
                return None
            return self._items.popleft()

    def close(self, reason: str = "closed") -> None:
        with self._cond:
            self._close_locked(reason)
        if self._bus is not None:
            self._bus._remove(self)

    def _close_locked(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class EventBus:
    """Fan-out of agent events to any number of bounded subscriptions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Copy-on-write tuple: publish iterates without taking the lock.
        self._subs: tuple[Subscription, ...] = ()
        self.published = 0
        self.dropped_subscribers = 0

    def subscribe(self, maxsize: int = 256) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs = self._subs + (sub,)
        return sub

    def publish(self, type: str, data: Any) -> None:  # noqa: A002 - the event's "type" field
        event = {"type": type, "data": data}
        self.published += 1
        for sub in self._subs:
            if not sub._offer(event) and sub.close_reason == TOO_SLOW:
                self.dropped_subscribers += 1
                self._remove(sub)

    def close_all(self, reason: str = "shutting down") -> None:
        for sub in self._subs:
            sub.close(reason)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs = tuple(s for s in self._subs if s is not sub)
