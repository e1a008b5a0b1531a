"""The parser against the generated corpus: counts and a sample of tasks equal the generator's truth."""

from __future__ import annotations

import pytest
from msgspec import to_builtins

from monitor_agent.logs import Invoice, LogEntry, LogParser, SlotUsage
from monitor_agent.model import TaskEvent
from monitor_agent.store import merge_event
from monitor_agent.web.serializers import local_task

from .conftest import corpus_bytes

FILES = {
    "debug": ["debug/debug-2024-01-15.log.gz", "debug/debug-2024-01-16.log"],
    "compose": ["compose/runner-node.log"],
    "docker": ["docker/runner-node.log"],
}


def parse(kind: str, batch: bool = True) -> tuple[list, LogParser]:
    parser = LogParser()
    records: list = []
    for rel in FILES[kind]:
        text = corpus_bytes(rel).decode("utf-8", "replace")
        if batch:
            records += parser.feed_lines(text.removesuffix("\n").split("\n"))
        else:
            for line in text.splitlines(keepends=True):
                records += parser.feed(line)
    records += parser.flush()
    return records, parser


def merged(records: list) -> dict[str, dict]:
    """Task rows exactly as the store merges the events."""
    rows = {}
    for ev in records:
        if isinstance(ev, TaskEvent):
            rows[ev.execution_id] = merge_event(rows.get(ev.execution_id), ev)
    return {k: to_builtins(local_task(t, include_private=True)) for k, t in rows.items()}


@pytest.mark.parametrize("kind", ["debug", "compose", "docker"])
def test_counts_and_sample_match_the_generator(kind, expected):
    exp = expected[kind]
    records, parser = parse(kind)
    tasks = merged(records)
    assert len(tasks) == exp["tasks"]
    statuses = [t["status"] for t in tasks.values()]
    assert statuses.count("completed") == exp["completed"]
    assert statuses.count("failed") == exp["failed"]
    assert (
        sum(1 for t in tasks.values() if t["status"] == "failed" and t["exitCode"] not in (None, 0))
        == exp["failedByExitCode"]
    )
    # A missing exit code is unknown, not a failure.
    assert (
        sum(1 for t in tasks.values() if t["status"] == "completed" and t["exitCode"] is None)
        == exp["missingExitCode"]
    )
    assert sum(isinstance(r, Invoice) for r in records) == exp["invoices"]
    assert parser.stats.failed == exp["failed"] and parser.stats.completed == exp["completed"]
    for want in exp["sample"]:
        got = tasks[want["executionId"]]
        for key in ("status", "chainId", "blockNumber", "taskType", "executionTimeMs", "exitCode", "steps",
                    "memoryPeak", "cached"):  # fmt: skip
            assert got[key] == want[key], (want["executionId"], key)
        assert got["private"]["task_id"] == want["taskId"]
        assert got["receivedAt"] is not None and got["finishedAt"] is not None


def test_debug_day_extras(expected):
    exp = expected["debug"]
    records, parser = parse("debug")
    st = parser.stats
    assert st.lines == exp["lines"]
    assert st.truncated == exp["hugeLines"]  # the 100 kB line is cut, the rest of the day is intact
    assert st.invalid_json == exp["corruptedTail"]  # the cut task_created at the end
    assert st.slot_usages == 2 * exp["tasks"]
    assert any(isinstance(r, SlotUsage) and r.action == "released" and r.capacity == 4 for r in records)
    bad = [r for r in records if isinstance(r, LogEntry) and r.reason == "invalid_json"]
    assert len(bad) == 1 and "task_created" in bad[0].message  # kept for the operator, not lost
    errors = [r for r in records if isinstance(r, LogEntry) and r.reason == "error"]
    assert len(errors) == exp["failedByError"] and all("at Runner.execute" in e.message for e in errors)
    assert parser.wallet == expected["wallet"]


def test_batch_and_line_by_line_agree():
    a, pa = parse("compose", batch=True)
    b, pb = parse("compose", batch=False)
    assert pa.stats.as_dict() == pb.stats.as_dict()
    assert merged(a) == merged(b)


def test_private_values_only_in_private(expected):
    """The wallet, accounts, task ids, block hashes and inputs never sit in a public field."""
    records, _ = parse("debug")
    secrets = set(expected["privateValues"])
    for ev in records:
        if not isinstance(ev, TaskEvent):
            continue
        public = {k: getattr(ev, k) for k in TaskEvent.__slots__ if k not in ("private", "execution_id")}
        text = repr(public)
        assert not any(s in text for s in secrets)
        assert "0x" not in text
        assert not any(isinstance(v, str) and v in text for v in ev.private.values())
        assert ev.task_type in (None, "js", "rs", "api")
    received = [ev for ev in records if isinstance(ev, TaskEvent) and ev.kind == "received"]
    assert all(ev.private["wallet"] == expected["wallet"] for ev in received)
    assert all(
        ev.private["block_hash"].startswith("0x") and "secret" in ev.private["input"] for ev in received
    )
