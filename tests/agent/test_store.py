"""The SQLite store: merging, cursors, queries, dedupe, incremental stats, retention, FED_006."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from monitor_agent.errors import FederationError, StoreError
from monitor_agent.model import TaskEvent
from monitor_agent.store import DAY_MS, SCHEMA_VERSION, FederationTaskRow, Store, now_ms
from tests.plugins.tools import wait_for

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def ev(kind, eid="e1", at=T0, **kw):
    return TaskEvent(kind, eid, at, **kw)


def row(node="node-aaaaaaaaaa", n=0, event="task_completed", chain=1, exec_ms=100, received_at=None):
    status = event.removeprefix("task_")
    return FederationTaskRow(
        node,
        f"global-task-{n:012x}",
        event,
        chain,
        5,
        "js",
        status,
        exec_ms,
        "2024-01-15T10:30:00Z",
        received_at if received_at is not None else now_ms(),
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


def test_schema_is_versioned_wal_and_reopens(tmp_path):
    Store(tmp_path / "t.db").close()
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"federation_tasks_received", "federation_tasks_chain"} <= indexes
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as err:
        Store(tmp_path / "t.db")
    # A local database failure is not a federation failure (no handler of those may swallow it),
    # yet the operator still sees it as FED_006.
    assert not isinstance(err.value, FederationError)
    assert err.value.code == "FED_006" and "newer" in err.value.message


def test_a_new_data_dir_and_database_are_private_to_the_owner(tmp_path):
    """The database holds execution ids, wallets and inputs: other local users must not read it."""
    import os
    import stat

    from monitor_agent.identity import load_identity

    old = os.umask(0o022)  # the usual umask, which would leave 0755 dirs and 0644 files
    try:
        data = tmp_path / "data"
        load_identity(data)
        s = Store(data / "truebit-monitor.db")
        try:
            s.upsert_local_task(ev("received", "0b7c1d2e-3333-4000-8000-00000000000c"))
            mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        finally:
            s.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert mode["truebit-monitor.db"] == 0o600
    assert all(m & 0o077 == 0 for m in mode.values()), mode


def test_lifecycle_merge_is_idempotent_and_keeps_private_fields_local(store):
    task, changed = store.upsert_local_task(
        ev("received", chain_id=43113, block_number=30_000_000, task_type="js", private={"wallet": "0xab"})
    )
    assert changed and task.status == "received" and task.private == {"wallet": "0xab"}
    assert (
        store.upsert_local_task(
            ev(
                "received",
                chain_id=43113,
                block_number=30_000_000,
                task_type="js",
                private={"wallet": "0xab"},
            )
        )[1]
        is False
    )
    task, _ = store.upsert_local_task(ev("started", at=T0 + timedelta(seconds=1)))
    assert task.status == "running"
    task, _ = store.upsert_local_task(
        ev("completed", at=T0 + timedelta(seconds=2), execution_time_ms=245, exit_code=0)
    )
    assert (task.status, task.execution_time_ms, task.received_at) == ("completed", 245, T0)
    # An out-of-order earlier event does not move the status back.
    task, _ = store.upsert_local_task(ev("received", at=T0 - timedelta(seconds=5)))
    assert task.status == "completed" and task.received_at == T0 - timedelta(seconds=5)
    # A failure named after completion wins, and stays.
    assert store.upsert_local_task(ev("failed", at=T0 + timedelta(seconds=3)))[0].status == "failed"
    assert store.upsert_local_task(ev("completed", at=T0 + timedelta(seconds=4)))[0].status == "failed"
    # A non-zero exit code makes a completion a failure.
    assert store.upsert_local_task(ev("completed", "e2", exit_code=1))[0].status == "failed"
    rows, total = store.list_local_tasks(10, 0, None)
    assert total == 2
    rows, _ = store.list_local_tasks(10, 0, "failed")
    assert {t.execution_id for t in rows} == {"e1", "e2"} and rows[-1].private == {"wallet": "0xab"}


def test_cursors_log_entries_and_local_stats(store):
    assert store.get_cursor("files:/var/log/x") is None
    store.set_cursor("files:/var/log/x", {"inode": 5, "offset": 1234})
    store.set_cursor("files:/var/log/x", {"inode": 5, "offset": 2000})
    assert store.get_cursor("files:/var/log/x") == {"inode": 5, "offset": 2000}
    assert store.add_log_entries([(T0, "warn", "odd line"), (None, "info", "another")]) == 2
    assert [e["message"] for e in store.list_log_entries()] == ["another", "odd line"]
    now = datetime.now(UTC)
    store.upsert_local_task(ev("received", "a", at=now))
    store.upsert_local_task(ev("completed", "b", at=now, execution_time_ms=100, exit_code=0))
    store.upsert_local_task(ev("completed", "c", at=now, execution_time_ms=300, exit_code=0))
    s = store.local_stats()
    assert (s["tasks24h"], s["tasksCompleted24h"], s["activeTasks"], s["avgExecutionMs"]) == (3, 2, 1, 200)


def test_federation_rows_are_batched_deduplicated_filtered_and_counted(store):
    store.enqueue_peer(
        "node-aaaaaaaaaa", now_ms(), event="node_online", region="ASIA", version="1", tasks_reported=0
    )
    base = now_ms()
    for n in range(10):
        store.enqueue_federation_task(row(n=n, chain=1 if n % 2 else 43113, received_at=base + n))
    store.enqueue_federation_task(row(n=0, received_at=base + 20))  # duplicate (node, task, event)
    store.enqueue_federation_task(row(n=0, event="task_received", exec_ms=None, received_at=base + 21))
    assert store.flush()
    rows, total = store.query_federation_tasks(3)
    assert total == 11 and len(rows) == 3 and rows[0].status == "received"  # newest first
    assert store.duplicates == 1
    rows, total = store.query_federation_tasks(100, chain_id=43113)
    assert total == 5 and {r.chain_id for r in rows} == {43113}
    _, total = store.query_federation_tasks(100, since=datetime.fromtimestamp((base + 5) / 1000, UTC))
    assert total >= 1
    stats = store.network_stats()
    # Distinct tasks (a received+completed pair is one task); completions with their average.
    assert (stats["tasks24h"], stats["tasksCompleted24h"], stats["avgExecutionMs"]) == (10, 10, 100)
    assert stats["activeNodes"] == 1 and stats["connectedPeers"] == 1
    assert store.list_peers()[0].tasks_reported == 10


def test_incremental_stats_agree_with_a_recount_after_reopen(tmp_path):
    s = Store(tmp_path / "t.db")
    for n in range(50):
        s.enqueue_federation_task(
            row(n=n, exec_ms=n * 10, event="task_completed" if n % 5 else "task_failed")
        )
    s.flush()
    live = s.network_stats()
    s.close()
    s = Store(tmp_path / "t.db")
    assert {k: v for k, v in s.network_stats().items() if k != "connectedPeers"} == {
        k: v for k, v in live.items() if k != "connectedPeers"
    }
    assert (live["tasks24h"], live["tasksCompleted24h"], live["tasksFailed24h"]) == (50, 40, 10)
    s.close()


def test_retention_and_clear(store):
    old = now_ms() - 8 * DAY_MS
    store.enqueue_peer(
        "node-bbbbbbbbbb", old, event="node_online", region="SA", version="1", tasks_reported=1
    )
    store.enqueue_peer(
        "node-aaaaaaaaaa", now_ms(), event="node_online", region="SA", version="1", tasks_reported=1
    )
    for n in range(5):
        store.enqueue_federation_task(row(n=n, received_at=old))
    store.enqueue_federation_task(row(n=99))
    store.flush()
    assert store.run_retention() == {"tasks": 5, "peers": 1}
    assert store.query_federation_tasks(10)[1] == 1
    assert [p.node_id for p in store.list_peers()] == ["node-aaaaaaaaaa"]
    assert store.clear_federation() == {"tasks": 1, "peers": 1}
    assert store.query_federation_tasks(10) == ([], 0) and store.list_peers() == []
    assert store.network_stats()["tasks24h"] == 0


def test_disk_full_raises_fed_006_keeps_data_and_the_writer_retries(tmp_path):
    errors = []
    s = Store(tmp_path / "t.db", on_error=errors.append)
    s.upsert_local_task(ev("received", "kept"))
    pages = sqlite3.connect(tmp_path / "t.db").execute("PRAGMA page_count").fetchone()[0]
    s.set_max_pages(pages)  # the database may not grow: SQLITE_FULL on the next new page
    with pytest.raises(StoreError) as err:
        for i in range(200):
            s.upsert_local_task(ev("received", f"big-{i}", private={"blob": "x" * 4000}))
    assert err.value.code == "FED_006" and "full" in err.value.message
    for n in range(300):
        s.enqueue_federation_task(row(n=n))
    wait_for(lambda: errors, what="FED_006 from the writer")
    assert errors[0].code == "FED_006" and isinstance(errors[0], StoreError)
    assert s.get_local_task("kept") is not None  # nothing already stored is lost
    assert s.check_writable() in (True, False)
    s.set_max_pages(1_000_000)  # space again: the writer's retry lands every queued row
    assert s.flush(timeout=10)
    # Every queued row is stored, except the oldest received rows the writer evicted to make room
    # (rows a first small batch stored before the disk was full, when the writer was that quick).
    rows, total = s.query_federation_tasks(1000)
    assert total == len(rows) == 300 - s.evicted and s.evicted < 300
    assert "global-task-00000000012b" in {r.task_id for r in rows}  # the newest (n=299) is kept
    assert s.check_writable()
    s.close()


@pytest.mark.slow
def test_stats_and_queries_stay_fast_with_many_rows(tmp_path):
    # 200 000 rows keeps the suite quick; bench/receive_pipeline.py --store-rows 1000000 measures 1 M.
    path = tmp_path / "big.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    now = now_ms()
    conn.executemany(
        "INSERT INTO federation_tasks (source_node, task_id, event, chain_id, block_number, task_type, status, "
        "execution_time_ms, timestamp, received_at, first) VALUES (?, ?, 'task_completed', ?, 1, 'js', "
        "'completed', 100, '2024-01-15T10:30:00Z', ?, 1)",
        (
            (f"node-{i % 100:010x}", f"global-task-{i:012x}", i % 3, now - (i * 86) % DAY_MS)
            for i in range(200_000)
        ),
    )
    conn.commit()
    conn.close()
    s = Store(path)

    def best_of_5(fn):  # the limits hold for the best try: one preemption on a shared host is not ours
        times = []
        for _ in range(5):
            t = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t)
        return result, min(times)

    stats, spent = best_of_5(lambda: [s.network_stats() for _ in range(100)][-1])
    assert stats["tasks24h"] == 200_000 and spent / 100 < 0.005
    (rows, total), spent = best_of_5(lambda: s.query_federation_tasks(100))
    assert total == 200_000 and len(rows) == 100 and spent < 0.05
    s.close()


def test_chain_filtered_totals_match_a_recount_through_insert_retention_reopen_and_clear(tmp_path):
    """`total` of a chainId page comes from kept counters: it must always equal COUNT(*)."""

    def recount(s, chain):
        with sqlite3.connect(s.path) as c:
            return c.execute("SELECT COUNT(*) FROM federation_tasks WHERE chain_id = ?", (chain,)).fetchone()[
                0
            ]

    s = Store(tmp_path / "t.db")
    old = now_ms() - 8 * DAY_MS
    for n in range(30):
        s.enqueue_federation_task(
            row(n=n, chain=(1, 43113, 43114)[n % 3], received_at=old if n < 9 else None)
        )
    s.enqueue_federation_task(row(n=10, chain=43113))  # duplicate: not counted twice
    s.flush()
    for chain in (1, 43113, 43114, 7):
        assert s.query_federation_tasks(5, chain_id=chain)[1] == recount(s, chain)
    assert s.query_federation_tasks(5, chain_id=1)[1] == 10
    s.run_retention()
    for chain in (1, 43113, 43114):
        assert s.query_federation_tasks(5, chain_id=chain)[1] == recount(s, chain) == 7
    s.close()
    s = Store(tmp_path / "t.db")
    assert s.query_federation_tasks(5, chain_id=43114)[1] == 7
    s.clear_federation()
    assert s.query_federation_tasks(5, chain_id=43114) == ([], 0)
    s.close()


def test_feed_page_built_by_sqlite_equals_the_row_page_and_the_python_shape(store):
    """The API's JSON-in-SQL page must be the same page, order and shape as the Python rows."""

    import msgspec

    from monitor_agent.store import iso
    from monitor_agent.web.serializers import FEDERATION_TASK_SQL, federation_task

    base = now_ms()
    for n in range(40):
        exec_ms = None if n % 7 == 0 else n * 3
        store.enqueue_federation_task(
            row(n=n, chain=(1, 43113)[n % 2], exec_ms=exec_ms, received_at=base + n * 999)
        )
    store.flush()
    for chain, limit in ((None, 100), (1, 5), (43113, 100), (99, 10)):
        rows, total = store.query_federation_tasks(limit, chain_id=chain)
        text, total_json = store.query_federation_tasks_json(FEDERATION_TASK_SQL, limit, chain_id=chain)
        # Byte for byte what msgspec makes of the GlobalTask Structs (names, order, values).
        assert text.encode() == msgspec.json.encode([federation_task(r) for r in rows]) and total_json == total
    rows, _ = store.query_federation_tasks(1)
    task = federation_task(rows[0])
    assert task.received_at == iso(base + 39 * 999) and task.execution_time_ms == 39 * 3


def test_cached_feed_pages_never_outlive_a_change(store):
    """A cached JSON page is served only while no federation row was added or removed."""
    import json

    from monitor_agent.web.serializers import FEDERATION_TASK_SQL as FEED

    store.enqueue_federation_task(row(n=1, chain=1))
    store.flush()
    first, total = store.query_federation_tasks_json(FEED, 100, chain_id=1)
    assert total == 1 and store.query_federation_tasks_json(FEED, 100, chain_id=1) == (first, 1)
    store.enqueue_federation_task(row(n=2, chain=1))
    store.flush()
    text, total = store.query_federation_tasks_json(FEED, 100, chain_id=1)
    assert total == 2 and len(json.loads(text)) == 2
    store.run_retention(now=now_ms() + 30 * DAY_MS)  # everything expires
    assert store.query_federation_tasks_json(FEED, 100, chain_id=1) == ("[]", 0)
    store.enqueue_federation_task(row(n=3, chain=1))
    store.flush()
    assert store.query_federation_tasks_json(FEED, 100, chain_id=1)[1] == 1
    store.clear_federation()
    assert store.query_federation_tasks_json(FEED, 100, chain_id=1) == ("[]", 0)


def test_one_batch_marks_exactly_one_first_event_per_task_and_ignores_duplicates(tmp_path):
    """Batched inserts: a task seen before, a task new in this batch twice, exact duplicates."""
    s = Store(tmp_path / "t.db", start_writer=False)
    s.enqueue_federation_task(row(n=1, event="task_received", exec_ms=None))
    s.start_writer()
    assert s.flush()
    base = now_ms()
    batch = [
        row(n=1, event="task_completed", received_at=base),  # task 1 seen in an earlier batch
        row(n=2, event="task_received", exec_ms=None, received_at=base + 1),  # new task, twice in batch
        row(n=2, event="task_completed", received_at=base + 2),
        row(n=2, event="task_completed", received_at=base + 3),  # exact duplicate: ignored
        row(node="node-bbbbbbbbbb", n=2, event="task_failed", received_at=base + 4),  # same id, other node
    ]
    for r in batch:
        s.enqueue_federation_task(r)
    assert s.flush()
    with sqlite3.connect(s.path) as c:
        firsts = dict(
            ((node, task), total)
            for node, task, total in c.execute(
                "SELECT source_node, task_id, SUM(first) FROM federation_tasks GROUP BY source_node, task_id"
            )
        )
        rows_stored = c.execute("SELECT COUNT(*) FROM federation_tasks").fetchone()[0]
    assert set(firsts.values()) == {1} and len(firsts) == 3
    assert rows_stored == 5 and s.duplicates == 1
    assert s.network_stats()["tasks24h"] == 3
    s.close()


def test_the_local_status_vocabulary_is_one_list():
    """Store counters, merge precedence, API validation and dashboard icons all use model.TASK_STATUSES."""
    from monitor_agent.anonymizer import STATUS_EVENT
    from monitor_agent.model import BROADCAST_STATUSES, TASK_STATUSES
    from monitor_agent.protocol import EVENT_STATUS
    from monitor_agent.store import STATUS_RANK
    from monitor_agent.web.dashboard import TASK_ICONS
    from monitor_agent.web.validation import BadRequest, parse_local_tasks

    assert TASK_STATUSES == ("received", "running", "completed", "failed", "unknown")
    assert set(STATUS_RANK) == set(TASK_ICONS) == set(TASK_STATUSES)
    assert set(BROADCAST_STATUSES) == set(EVENT_STATUS.values()) == set(STATUS_EVENT)
    with pytest.raises(BadRequest, match="expected one of received, running, completed, failed, unknown"):
        parse_local_tasks({"status": ["done"]})


def test_a_page_never_shows_more_rows_than_its_total_while_rows_arrive(store):
    """The writer stores rows while a dashboard polls: every page's `total` covers the rows on it
    (a page "14 of 12" was seen during catch-up), for the plain, chain-filtered and JSON pages."""
    stop = threading.Event()
    bad: list[str] = []

    def poll() -> None:
        while not stop.is_set():
            rows, total = store.query_federation_tasks(1000)
            if total < len(rows):
                bad.append(f"rows page: {len(rows)} of {total}")
            rows, total = store.query_federation_tasks(1000, chain_id=1)
            if total < len(rows):
                bad.append(f"chain page: {len(rows)} of {total}")
            text, total = store.query_federation_tasks_json((("t", "task_id"),), 1000)
            if total < len(json.loads(text)):
                bad.append(f"JSON page: {len(json.loads(text))} of {total}")

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for n in range(600):
            store.enqueue_federation_task(row(n=n, chain=1))
            if n % 3 == 0:
                time.sleep(0.0005)  # small batches: many commits to race with
        assert store.flush(10)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not bad, bad[:5]
    assert store.query_federation_tasks(1000)[1] == 600
