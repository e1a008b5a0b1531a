"""The store's merge rules and in-memory views as pure code: no database, no threads.

`merge_event` (a local task after one more log event), `PeerState.heard` (a peer after one more
message), the 24 h window and counters of received rows, and the feed page cache.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_agent.model import TASK_STATUSES, TaskEvent
from monitor_agent.store import DAY_MS, MINUTE_MS, STATUS_RANK, FederationTaskRow, PeerState, merge_event
from monitor_agent.store.feed import FeedCache
from monitor_agent.store.stats import FederationStats

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def ev(kind, at=T0, eid="e1", **kw):
    return TaskEvent(kind, eid, at, **kw)


def merged(*events):
    task = None
    for e in events:
        task = merge_event(task, e)
    return task


def test_status_precedence_covers_the_vocabulary_and_never_moves_back():
    assert set(STATUS_RANK) == set(TASK_STATUSES)
    done = merged(
        ev("received"), ev("started", T0 + timedelta(seconds=1)), ev("completed", T0 + timedelta(seconds=2))
    )
    assert done.status == "completed"
    # A late "started" line (a slow reader of another file) does not make it running again.
    late = merge_event(done, ev("started", T0 + timedelta(seconds=3)))
    assert late.status == "completed" and late.started_at == T0 + timedelta(seconds=1)
    # An error naming the execution outranks the completion, and stays.
    failed = merge_event(late, ev("failed", T0 + timedelta(seconds=4)))
    assert failed.status == "failed"
    assert merge_event(failed, ev("completed", T0 + timedelta(seconds=5))).status == "failed"


def test_a_non_zero_exit_code_is_a_failure_and_a_missing_one_is_not():
    assert merged(ev("received"), ev("completed", exit_code=3)).status == "failed"
    assert merged(ev("received"), ev("completed", exit_code=None)).status == "completed"
    # Metrics arriving in a later event with a non-zero code turn a completion into a failure.
    assert merged(ev("completed"), ev("completed", exit_code=1)).status == "failed"


def test_times_facts_and_private_fields_merge_forward():
    t = merged(
        ev("received", T0 + timedelta(seconds=5), chain_id=43113, task_type="js", private={"wallet": "0xab"}),
        ev("received", T0, block_number=30_000_000),  # an earlier copy: the earliest time wins
        ev("completed", T0 + timedelta(seconds=9), execution_time_ms=200),
        ev("completed", T0 + timedelta(seconds=7), execution_time_ms=245, steps=7, private={"error": "x"}),
    )
    assert (t.received_at, t.finished_at) == (T0, T0 + timedelta(seconds=9))
    assert (t.chain_id, t.block_number, t.task_type, t.execution_time_ms, t.steps) == (
        43113,
        30_000_000,
        "js",
        245,
        7,
    )
    assert t.private == {"wallet": "0xab", "error": "x"}


def test_sub_millisecond_times_are_rounded_so_a_redelivered_event_changes_nothing():
    at = T0 + timedelta(microseconds=123_456)
    once = merged(ev("received", at))
    assert once.received_at == T0 + timedelta(milliseconds=123)
    assert merge_event(once, ev("received", at)) == once


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["received", "started", "completed", "failed"]),
            st.integers(0, 600),
            st.sampled_from([None, 0, 1]),
            st.sampled_from([None, 100, 250]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_merging_is_idempotent_and_the_status_rank_never_drops(steps):
    task = None
    for kind, secs, code, ms in steps:
        e = ev(kind, T0 + timedelta(seconds=secs), exit_code=code, execution_time_ms=ms)
        before = task
        task = merge_event(task, e)
        assert merge_event(task, e) == task  # the same event again: nothing changes
        if before is not None:
            assert STATUS_RANK[task.status] >= STATUS_RANK[before.status]


def test_a_peer_keeps_its_first_key_and_its_latest_sighting():
    p = PeerState.first_heard("node-a", 1_000, region="EU-WEST", pinned_key="key-1")
    assert (p.region, p.last_seen, p.pinned_key, p.tasks_reported) == ("EU-WEST", 1_000, "key-1", 0)
    assert p.heard(500, region="ASIA", pinned_key="key-2") is False  # an older message, another key
    assert (p.region, p.last_seen, p.pinned_key) == ("ASIA", 1_000, "key-1")
    q = PeerState.first_heard("node-b", 1_000)
    assert q.heard(2_000, pinned_key="key-3", event="node_offline", tasks_reported=4) is True
    assert (q.pinned_key, q.last_seen, q.last_event, q.tasks_reported) == ("key-3", 2_000, "node_offline", 4)
    assert not q.online(2_001)  # said goodbye
    assert p.online(1_000 + 1) and not p.online(1_000 + 10 * 60 * 1000)


def test_network_figures_count_received_rows_and_forget_evicted_ones():
    now = 100 * DAY_MS
    stats = FederationStats()
    stats.heard("node-a", now, pinned_key="key-a", event="node_online")
    assert stats.key_nodes == {"key-a": "node-a"}

    def fed(n, event, at, first=True, exec_ms=None, chain=1):
        return (
            FederationTaskRow("node-a", f"t{n}", event, chain, None, "js", event[5:], exec_ms, "", at),
            first,
        )

    rows = [
        fed(1, "task_received", now - 1_000),
        fed(1, "task_completed", now - 500, first=False, exec_ms=100),
        fed(2, "task_completed", now - 400, exec_ms=300, chain=43113),
        fed(3, "task_failed", now - DAY_MS - MINUTE_MS),  # older than a day: counted in totals only
    ]
    stats.count_stored(rows)
    stats.count_peer_tasks(rows)
    assert stats.total == 4 and stats.chain_totals == {1: 3, 43113: 1}
    assert stats.peers["node-a"].tasks_reported == 3  # first events only
    figures = stats.network(now)
    assert figures == {"connectedPeers": 1, "tasks24h": 2, "activeNodes": 1, "tasksCompleted24h": 2,
                       "tasksFailed24h": 0, "avgExecutionMs": 200}  # fmt: skip
    # Evicting the oldest rows takes them out of every figure.
    stats.uncount_evicted([(43113, now - 400, 1, "task_completed", 300)], now)
    assert stats.total == 3 and stats.chain_totals == {1: 3}
    assert stats.network(now)["avgExecutionMs"] == 100 and stats.network(now)["tasks24h"] == 1
    with stats.lock:
        stats.forget_peers(["node-a"])
    assert stats.peers == {} and stats.key_nodes == {}


def test_a_feed_page_built_before_a_change_is_never_served_after_it():
    cache = FeedCache(pages=2)
    generation, hit = cache.get(("p1",))
    assert hit is None
    cache.invalidate()  # a row arrives while the page is being built
    cache.put(("p1",), generation, ("[1]", 1))
    assert cache.get(("p1",))[1] is None
    generation, _ = cache.get(("p1",))
    cache.put(("p1",), generation, ("[1, 2]", 2))
    assert cache.get(("p1",))[1] == ("[1, 2]", 2)
    for key in ("p2", "p3"):  # least recently used pages go first
        cache.put((key,), generation, ("[]", 0))
    assert cache.get(("p1",))[1] is None and len(cache) == 2


@pytest.mark.parametrize("kind", ["received", "started", "completed", "failed"])
def test_a_first_event_of_any_kind_makes_a_row(kind):
    t = merge_event(None, ev(kind))
    expected = {"received": "received", "started": "running", "completed": "completed", "failed": "failed"}[
        kind
    ]
    assert t.status == expected and t.execution_id == "e1"
