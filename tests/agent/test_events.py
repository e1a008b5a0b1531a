"""The event bus: fan-out, never blocking, slow subscribers closed instead of growing."""

from __future__ import annotations

import threading
import time

from monitor_agent.events import TOO_SLOW, EventBus


def test_every_subscriber_gets_every_event_in_order():
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(3):
        bus.publish("local_task", {"n": i})
    for sub in (a, b):
        assert [sub.get(0)["data"]["n"] for _ in range(3)] == [0, 1, 2]
        assert sub.get(0.01) is None


def test_a_slow_subscriber_is_closed_and_never_blocks_the_publisher():
    bus = EventBus()
    slow, fast = bus.subscribe(maxsize=5), bus.subscribe(maxsize=100)
    start = time.perf_counter()
    for i in range(50):
        bus.publish("federation_task", {"n": i})
    assert time.perf_counter() - start < 0.1
    assert slow.closed and slow.close_reason == TOO_SLOW and slow.get(0) is None and len(slow) == 0
    assert not fast.closed and len(fast) == 50
    assert bus.subscriber_count == 1 and bus.dropped_subscribers == 1


def test_get_waits_for_an_event_and_close_wakes_a_waiting_reader():
    bus = EventBus()
    sub = bus.subscribe()
    threading.Timer(0.05, bus.publish, ("federation_status", {"state": "CONNECTED"})).start()
    assert sub.get(2)["data"] == {"state": "CONNECTED"}
    threading.Timer(0.05, sub.close, ("bye",)).start()
    start = time.perf_counter()
    assert sub.get(5) is None and time.perf_counter() - start < 1
    assert sub.close_reason == "bye" and bus.subscriber_count == 0
