"""Shapes the node's output takes, one at a time."""

from __future__ import annotations

import json

import pytest

from monitor_agent.logs import MAX_LINE_CHARS, Invoice, LogEntry, LogParser, SlotUsage
from monitor_agent.model import TaskEvent

from .nodelog import LOGGER, WALLET

EID = "3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b"
RECEIVED = (f"2024-01-15 10:30:00 info: {LOGGER} Message received from task_created: "
            + json.dumps({"executionId": EID, "taskId": "api_" + "e" * 64, "chainId": "43113", "blockNumber": "28000001",
                          "blockHash": "0x" + "1" * 64, "input": "secret-input"}))  # fmt: skip


def parse(text: str) -> list:
    parser = LogParser()
    return list(parser.feed_all(text.splitlines(keepends=True)))


def events(text: str) -> list[TaskEvent]:
    return [r for r in parse(text) if isinstance(r, TaskEvent)]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda line: line,
        lambda line: "runner-node  | " + line,
        lambda line: "2024-01-15T10:30:00.123456789Z " + line,
        lambda line: line.replace(" info:", " \x1b[32minfo\x1b[39m:"),
        lambda line: "\x1b[36mrunner-node  |\x1b[0m " + line,
        lambda line: line + "\r",
    ],
    ids=["plain", "compose", "docker-ts", "ansi-level", "ansi-compose", "crlf"],
)
def test_received_in_every_wrapping(wrap):
    (ev,) = events(wrap(RECEIVED) + "\n")
    assert (ev.kind, ev.execution_id, ev.chain_id, ev.block_number, ev.task_type) == (
        "received", EID, 43113, 28000001, "api")  # fmt: skip
    assert ev.at.isoformat() == "2024-01-15T10:30:00+00:00"
    # Identifying data only in private: the wallet from the logger name, the task id, hash, input.
    assert ev.private == {"wallet": WALLET, "task_id": "api_" + "e" * 64, "block_hash": "0x" + "1" * 64,
                          "input": "secret-input"}  # fmt: skip


@pytest.mark.parametrize("level", ["debug", "info", "warn", "warning", "error", "INFO"])
def test_levels(level):
    (entry,) = parse(f"2024-01-15 10:30:00 {level}: {LOGGER} Something the parser does not know\n")
    assert isinstance(entry, LogEntry) and entry.message == "Something the parser does not know"
    assert entry.level == {"warning": "warn", "INFO": "info"}.get(level, level)
    assert WALLET not in entry.message


def test_metrics_failure_and_flat_keys():
    text = (RECEIVED + "\n"
            f"2024-01-15 10:30:05 info: {LOGGER} Execution {EID} completed\n"
            'Command execution stdout: {"elapsed": "1500000000", "wasi.exitCode": 2, "metering.last.steps": 99,'
            ' "execution.prepare.cached": true}\n')  # fmt: skip
    done = events(text)[-1]
    assert (done.kind, done.execution_time_ms, done.exit_code, done.steps, done.cached) == (
        "failed",
        1500,
        2,
        99,
        True,
    )


def test_error_entry_naming_the_execution_fails_it():
    text = (RECEIVED + "\n"
            f"2024-01-15 10:30:05 error: {LOGGER} Task processing error for execution {EID}: out of gas\n"
            "    at Executor.run (/app/x.js:1:1)\n")  # fmt: skip
    records = parse(text)
    failed = [r for r in records if isinstance(r, TaskEvent) and r.kind == "failed"]
    assert len(failed) == 1 and failed[0].exit_code is None and "out of gas" in failed[0].private["error"]
    assert any(
        isinstance(r, LogEntry) and r.reason == "error" and "Executor.run" in r.message for r in records
    )


def test_missing_exit_code_is_not_a_failure():
    text = (RECEIVED + f"\n2024-01-15 10:30:05 info: {LOGGER} Execution {EID} completed\n"
            'Command execution stdout: {"elapsed": "2000000"}\n')  # fmt: skip
    done = events(text)[-1]
    assert (done.kind, done.exit_code, done.execution_time_ms) == ("completed", None, 2)


def test_truncated_json_is_kept_raw_and_counted_and_the_next_entry_survives():
    parser = LogParser()
    cut = RECEIVED[: RECEIVED.index('"blockNumber"')]
    other = RECEIVED.replace(EID, "00000000-0000-4000-8000-000000000000")
    records = list(parser.feed_all([cut + "\n", other + "\n"]))
    assert parser.stats.invalid_json == 1
    assert [r.execution_id for r in records if isinstance(r, TaskEvent)] == [
        "00000000-0000-4000-8000-000000000000"
    ]
    assert any(isinstance(r, LogEntry) and r.reason == "invalid_json" for r in records)


def test_huge_line_is_capped():
    parser = LogParser()
    records = list(
        parser.feed_all([f"2024-01-15 10:30:00 info: {LOGGER} big " + "x" * (3 * MAX_LINE_CHARS) + "\n"])
    )
    assert parser.stats.truncated == 1 and len(records[0].message) <= MAX_LINE_CHARS


def test_slots_invoices_and_registration():
    text = (f"2024-01-15 10:30:00 info: {LOGGER} Semaphore Executor processing started - Using slot 2/4\n"
            f"2024-01-15 10:30:01 info: {LOGGER} Semaphore Executor processing started - Released slot (1/4 now active)\n"
            f"2024-01-15 10:30:02 info: {LOGGER} [InvoiceSubscriber] Invoice created "
            + json.dumps({"executionId": EID, "invoiceId": "1234567890123456789012",
                          "lineItem": [{"total_steps_computed": "2000000000", "peak_memory_used": "65536"}]})
            + f"\n2024-01-15 10:30:03 info: {LOGGER} Node with address {WALLET} registered successfully\n")  # fmt: skip
    parser = LogParser()
    records = list(parser.feed_all(text.splitlines()))
    slots = [r for r in records if isinstance(r, SlotUsage)]
    assert [(s.action, s.active, s.capacity) for s in slots] == [("acquired", 2, 4), ("released", 1, 4)]
    (inv,) = [r for r in records if isinstance(r, Invoice)]
    assert (inv.invoice_id, inv.execution_id, inv.steps, inv.memory_peak) == (
        "1234567890123456789012",
        EID,
        2_000_000_000,
        65536,
    )
    assert parser.wallet == WALLET and not any(isinstance(r, LogEntry) for r in records)


def test_orphan_lines_before_any_header_are_kept():
    records = parse('  "dangling": 1\n}\n' + RECEIVED + "\n")
    assert sum(isinstance(r, LogEntry) and r.reason == "orphan" for r in records) == 2
    assert sum(isinstance(r, TaskEvent) for r in records) == 1
