"""`monitor-agent parse` and `monitor-agent import-eventdb` on the corpus, with a real SQLite store."""

from __future__ import annotations

import json

from click.testing import CliRunner
from msgspec import to_builtins

from monitor_agent.cli import cli
from monitor_agent.protocol import TASK_ID_RE, TaskMessage
from monitor_agent.store import Store
from monitor_agent.web.serializers import local_task

from .conftest import CORPUS

DEBUG = [str(CORPUS / "debug" / "debug-2024-01-15.log.gz"), str(CORPUS / "debug" / "debug-2024-01-16.log")]


def run(args, tmp_path, **env):
    runner = CliRunner()
    return runner.invoke(cli, args, env={"DATA_DIR": str(tmp_path / "data"), **env}, catch_exceptions=False)


def test_parse_prints_every_task_and_the_counts(tmp_path, expected):
    r = run(["parse", *DEBUG], tmp_path)
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == expected["debug"]["tasks"]
    assert sum(" failed " in line for line in rows) == expected["debug"]["failed"]
    assert f"{expected['debug']['tasks']} tasks" in r.stderr and "1 with invalid JSON" in r.stderr
    assert expected["wallet"] not in r.stdout
    assert not (tmp_path / "data").exists()  # an audit writes nothing


def test_parse_shared_prints_exactly_the_valid_anonymized_messages(tmp_path, expected):
    r = run(["parse", "--shared", *DEBUG], tmp_path, FEDERATION_PRIVACY="strict")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2 * expected["debug"]["tasks"]  # received + completed/failed per task
    for line in lines:
        msg = json.loads(line)
        TaskMessage(**msg)  # the wire schema
        assert TASK_ID_RE.match(msg["taskId"]) and msg["blockNumber"] is None  # strict privacy
        assert msg["taskType"] in ("js", "rs", "api")
    text = r.stdout
    for secret in expected["privateValues"]:
        assert secret not in text
    for sample in expected["debug"]["sample"]:
        assert sample["executionId"] not in text and sample["taskId"] not in text


def test_parse_json_hides_private_fields_unless_asked(tmp_path, expected):
    r = run(["parse", "--json", str(CORPUS / "compose" / "runner-node.log")], tmp_path)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == expected["compose"]["tasks"] and all("private" not in row for row in rows)
    r = run(["parse", "--json", "--private", str(CORPUS / "compose" / "runner-node.log")], tmp_path)
    assert all(row["private"]["task_id"] for row in map(json.loads, r.stdout.splitlines()))


def test_import_eventdb_backfills_and_is_idempotent(tmp_path, expected):
    (path,) = (CORPUS / "eventdb").glob("*-eventDB.json")
    exp = expected["eventdb"]
    first = run(["import-eventdb", str(path)], tmp_path)
    assert first.exit_code == 0, first.output
    assert f"{exp['tasks']} tasks ({exp['tasks']} new" in first.output
    second = run(["import-eventdb", str(path)], tmp_path)
    assert f"(0 new, 0 updated, {exp['tasks']} unchanged)" in second.output
    store = Store(tmp_path / "data" / "truebit-monitor.db", start_writer=False)
    try:
        tasks, total = store.list_local_tasks(limit=1000)
        rows = to_builtins([local_task(t, include_private=True) for t in tasks])
        assert total == exp["tasks"]
        by_id = {r["executionId"]: r for r in rows}
        assert sum(r["status"] == "failed" for r in rows) == exp["failed"]
        for want in exp["sample"]:
            got = by_id[want["executionId"]]
            for key in (
                "status",
                "chainId",
                "blockNumber",
                "taskType",
                "executionTimeMs",
                "exitCode",
                "steps",
            ):
                assert got[key] == want[key], key
        assert len(store.list_invoices(limit=1000)) == exp["invoices"]
    finally:
        store.close()


def test_bad_input_gets_one_clear_line(tmp_path):
    bad = tmp_path / "x-eventDB.json"
    bad.write_text('{"records": [')
    r = run(["import-eventdb", str(bad)], tmp_path)
    assert r.exit_code != 0 and "is not valid JSON" in r.output and "Traceback" not in r.output
    bad.write_text('{"something": 1}')
    r = run(["import-eventdb", str(bad)], tmp_path)
    assert r.exit_code != 0 and "not an EventDB file" in r.output
    r = run(["parse", str(tmp_path / "missing.log")], tmp_path)
    assert r.exit_code == 2 and "does not exist" in r.output


def test_parse_a_folder_reads_rotated_gz_files_too(tmp_path, expected):
    """The README's way: the folder, not a `*.log` glob that skips the rotated `.gz` files."""
    r = run(["parse", "--shared", str(CORPUS / "debug")], tmp_path)
    assert r.exit_code == 0, r.output
    by_files = run(["parse", "--shared", *DEBUG], tmp_path)

    def shape(text):  # nodeId and taskIds come from a throwaway key per run
        return [{k: v for k, v in json.loads(line).items() if k not in ("nodeId", "taskId")}
                for line in text.splitlines()]  # fmt: skip

    assert shape(r.stdout) == shape(by_files.stdout)
    assert len(r.stdout.splitlines()) == 2 * expected["debug"]["tasks"]
    assert "history" in r.stderr and "never sent" in r.stderr and "would be sent" not in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(["parse", str(empty)], tmp_path)
    assert r.exit_code == 1 and "no .log or .log.gz files" in r.output
