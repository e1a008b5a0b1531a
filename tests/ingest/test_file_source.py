"""The files source on a real agent and a real SQLite store: history, append, rotation,
truncation, and a restart mid-file with every task counted exactly once."""

from __future__ import annotations

import gzip
import os
import uuid

import pytest

from monitor_agent.sources.files import FileSource, list_log_files

from .conftest import CORPUS, all_tasks, wait_for
from .nodelog import WALLET, task_text

pytestmark = pytest.mark.timeout(120)


def append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def source(agent, folder, **kw) -> FileSource:
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("rescan_interval", 0.1)
    src = FileSource(agent, folder, **kw)
    agent.register_source(src)
    return src


def test_reads_history_then_follows_append_and_rotation(tmp_path, make_agent, expected, caplog):
    caplog.set_level("INFO", logger="monitor_agent.sources.files")
    logs = tmp_path / "logs"
    logs.mkdir()
    for rel in ("debug/debug-2024-01-15.log.gz", "debug/debug-2024-01-16.log"):
        (logs / rel.split("/")[1]).write_bytes((CORPUS / rel).read_bytes())
    agent = make_agent()
    src = source(agent, logs)
    agent.start()
    wait_for(
        lambda: agent.store.local_stats()["total"] == expected["debug"]["tasks"], what="the day's history"
    )
    # a folder of 2 files: both are read (the rotated one, then the current one, which is followed)
    assert (
        "reading 2 files in" in caplog.text
        and "(1 rotated, then following debug-2024-01-16.log)" in caplog.text
    )
    stats = agent.store.local_stats()["byStatus"]
    assert (stats["completed"], stats["failed"]) == (
        expected["debug"]["completed"],
        expected["debug"]["failed"],
    )
    # The last invoice is followed only by the corrupted tail: it closes once the node is quiet.
    wait_for(
        lambda: len(agent.store.list_invoices(limit=1000)) == expected["debug"]["invoices"], what="invoices"
    )

    # Appended: the corrupted tail has no newline, so the node's next line completes it (as `tail` shows).
    current = logs / "debug-2024-01-16.log"
    new = str(uuid.uuid4())
    append(current, "\n" + task_text(new))
    wait_for(lambda: (agent.store.get_local_task(new) or None) and agent.store.get_local_task(new).status == "completed",
             what="the appended task")  # fmt: skip

    # Rotation: the current file is compressed away and a new dated file starts.
    current.with_name(current.name + ".gz").write_bytes(gzip.compress(current.read_bytes()))
    os.unlink(current)
    rotated = str(uuid.uuid4())
    (logs / "debug-2024-01-17.log").write_text(task_text(rotated, exit_code=3))
    wait_for(lambda: agent.store.get_local_task(rotated) is not None
             and agent.store.get_local_task(rotated).status == "failed", what="the task after rotation")  # fmt: skip
    assert agent.store.local_stats()["total"] == expected["debug"]["tasks"] + 2
    assert src.parser.stats.invalid_json == 1  # the corrupted tail, counted, nothing else lost


def test_truncation_is_followed(tmp_path, make_agent):
    logs = tmp_path / "logs"
    logs.mkdir()
    current = logs / "node-2024-02-01.log"
    first = [str(uuid.uuid4()) for _ in range(3)]
    current.write_text("".join(task_text(e) for e in first))
    agent = make_agent()
    source(agent, logs)
    agent.start()
    wait_for(lambda: agent.store.local_stats()["byStatus"]["completed"] == 3, what="first tasks")
    # copytruncate-style: the file is emptied in place, then the node writes on.
    with open(current, "r+") as f:
        f.truncate(0)
    later = str(uuid.uuid4())
    append(current, task_text(later, pretty=True))
    wait_for(lambda: agent.store.get_local_task(later) is not None
             and agent.store.get_local_task(later).status == "completed", what="the task after truncation")  # fmt: skip
    assert agent.store.get_local_task(later).chain_id == 1
    assert agent.store.local_stats()["total"] == 4


def test_restart_mid_file_counts_every_task_exactly_once(tmp_path, make_agent):
    logs = tmp_path / "logs"
    logs.mkdir()
    current = logs / "node-2024-03-01.log"
    ids = [str(uuid.uuid4()) for _ in range(6)]
    current.write_text("".join(task_text(e) for e in ids[:3]))
    a1 = make_agent("data")
    s1 = source(a1, logs, idle_flush=60.0)  # never flush on idleness here: an entry stays open at stop
    a1.start()
    wait_for(lambda: a1.store.local_stats()["byStatus"]["completed"] == 3, what="first three tasks")
    # Half of an entry: its pretty-printed JSON is cut where the agent stops.
    text = task_text(ids[3], pretty=True)
    cut = text.index('"blockNumber"')
    append(current, text[:cut])
    wait_for(lambda: s1.parser.stats.lines >= 3 * 7 + 4, what="the half entry to be read")
    a1.stop()
    delivered_1 = s1.sink.counts["task_events"]
    assert delivered_1 == 3 * 3  # received, started, completed per task; the open entry gave nothing yet

    # While stopped: the rest of that entry, another task, then rotation to a new file.
    append(current, text[cut:] + task_text(ids[4]))
    current.with_name(current.name + ".gz").write_bytes(gzip.compress(current.read_bytes()))
    os.unlink(current)
    (logs / "node-2024-03-02.log").write_text(task_text(ids[5]))

    a2 = make_agent("data")
    s2 = source(a2, logs, idle_flush=0.2)
    a2.start()
    wait_for(lambda: a2.store.local_stats()["byStatus"]["completed"] == 6, what="all six tasks")
    tasks = all_tasks(a2)
    assert sorted(tasks) == sorted(ids)
    assert (
        tasks[ids[3]]["blockNumber"] == 18_950_234 and tasks[ids[3]]["chainId"] == 1
    )  # the split entry, whole
    # Nothing of the history was read again: each event was delivered exactly once over both runs.
    assert delivered_1 + s2.sink.counts["task_events"] == 6 * 3
    assert [f.path.name for f in list_log_files(logs)] == ["node-2024-03-01.log.gz", "node-2024-03-02.log"]
    assert all(WALLET not in repr({k: v for k, v in t.items() if k != "private"}) for t in tasks.values())
