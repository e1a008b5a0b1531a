"""The parser's two classification paths agree on any line sequence.

`LogParser.feed` classifies one line at a time; `feed_lines` (what the file and Docker sources use)
takes a batch through `_feed_plain`/`_classify`, with a learned-header fast path, slices of
continuation lines and a fallback to `feed` for batches with carriage returns. Whatever the lines
and however they are cut into batches, both must produce the same records, the same counters and
the same wallet/version. The lines are built from the runner node's real shapes
(../shared/TRUEBIT_LOGS.md): headers with and without logger, levels in any case, compose and
Docker timestamp prefixes, colour codes, impossible dates, pretty-printed task JSON, metrics
continuation lines, invoices, slots, stack traces, over-long lines, and garbage.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor_agent.logs import LogParser
from monitor_agent.logs.parser import MAX_LINE_CHARS

WALLET = "0x5b2f8e3a9c41d07e6f1a2b3c4d5e6f708192a3b4"
LOGGERS = [
    f"@truebit/worker-runner-node-{WALLET}:1.4.2",
    "@truebit/worker-runner-node:1.5.0",
    f"@truebit/worker-runner-node-{WALLET}",
    None,  # no logger at all
]
EXECS = ["0b1e6d2a-5f3c-4e8a-9d71-2c4b6a8e0f13", "7c9a1e44-2b6d-4f0e-8a35-9e1d7b2c4f60", "e2f4a6c8-1b3d-4e5f-a7b9-c0d2e4f6a8b0"]
TASKS = ["js_" + "a1" * 32, "rs_" + "c3" * 32, "api_" + "9f" * 32]
# Seconds of a few minutes (learned-shape fast path, a minute seen before) and dates that do not exist.
TIMES = [
    "2024-01-15 10:30:00", "2024-01-15 10:30:01", "2024-01-15 10:30:59", "2024-01-15 10:31:00",
    "2024-01-16 00:00:07", "2024-02-30 10:30:00", "2024-01-15 25:00:00", "2024-01-15 10:30:61",
]  # fmt: skip
LEVELS = ["info", "warn", "error", "debug", "INFO", "Warning", "trace"]
# Between timestamp and level, level and logger, logger and message: what the header regex allows.
SEPARATORS = [(" ", ": ", " "), (" ", " : ", " "), (".123Z ", ": ", " "), (",5 ", ":", ""), (" ", ": ", "  ")]


def _task_json(exec_i: int, task_i: int, chain, flat: bool, pretty: bool) -> list[str]:
    task = {"taskId": TASKS[task_i], "chainId": chain, "blockNumber": 28_123_456, "blockHash": "0x" + "d" * 64,
            "input": "{\"secret\": 1}"}  # fmt: skip
    obj = {"executionId": EXECS[exec_i], **task} if flat else {"executionId": EXECS[exec_i], "task": task}
    text = json.dumps(obj, indent=2 if pretty else None)
    return text.split("\n")


@st.composite
def messages(draw) -> tuple[str, list[str]]:
    """One entry's message and its continuation lines."""
    e = draw(st.integers(0, len(EXECS) - 1))
    kind = draw(st.sampled_from(["received", "started", "done", "metrics", "published", "slot", "invoice",
                                 "downloaded", "registered", "error", "other"]))  # fmt: skip
    if kind == "received":
        pretty = draw(st.booleans())
        body = _task_json(e, draw(st.integers(0, len(TASKS) - 1)), draw(st.sampled_from([1, "43113", 43114, -1])),
                          draw(st.booleans()), pretty)  # fmt: skip
        if pretty:
            return "Message received from task_created:", body
        return "Message received from task_created: " + body[0], []
    if kind == "started":
        return draw(st.sampled_from(["Starting task execution...", f"Starting task execution for {TASKS[e]}"])), []
    if kind in ("done", "metrics"):
        msg = draw(st.sampled_from([f"Execution {EXECS[e]} completed", f"Execution {EXECS[e]} failed",
                                    "Execution finished"]))  # fmt: skip
        if kind == "done":
            return msg, []
        metrics = {"elapsed": draw(st.sampled_from(["245000000", 1_000_000, "x"])),
                   "wasi": {"exitCode": draw(st.sampled_from([0, 1, "2", None]))},
                   "metering": {"last": {"steps": 2_000_000_000}, "peak": {"memory": 65536, "call": 3}},
                   "execution": {"prepare": {"cached": draw(st.booleans())}, "wasm": {"size": 10, "hash": "ab"}}}  # fmt: skip
        body = json.dumps(metrics, indent=draw(st.sampled_from([None, 2])))
        cont = ("Command execution stdout: " + body).split("\n")
        if draw(st.booleans()):
            cont = cont[: draw(st.integers(1, len(cont)))]  # cut short: invalid JSON
        return msg, cont
    if kind == "published":
        return "Message published to compute_outcome", []
    if kind == "slot":
        return draw(st.sampled_from(["Semaphore Executor processing started - Using slot 1/4",
                                     "Semaphore Executor processing done - Released slot (0/4 now active)",
                                     "Semaphore Executor confused"])), []  # fmt: skip
    if kind == "invoice":
        items = [{"total_steps_computed": 2_000_000_000, "peak_memory_used": 65536, "account": "0x" + "1" * 40}]
        inv = {"executionId": EXECS[e], "taskId": TASKS[0], "invoiceId": "1234567890123456789012", "lineItem": items}
        return draw(st.sampled_from([
            "[InvoiceSubscriber] Subscribed to invoices",
            "[InvoiceSubscriber] invoice 1234567890123456789012 written",
            "[InvoiceSubscriber] invoice " + json.dumps(inv),
            "[InvoiceSubscriber] invoice {broken",
        ])), []  # fmt: skip
    if kind == "downloaded":
        return f"Task {TASKS[e]} downloaded successfully", []
    if kind == "registered":
        return f"Node with address {WALLET} registered successfully", []
    if kind == "error":
        return draw(st.sampled_from([f"Task execution {EXECS[e]} crashed", "Something broke"])), [
            "Error: boom", "    at run (/app/dist/index.js:1:2)"]
    return draw(st.text(st.characters(blacklist_characters="\n\r"), max_size=40)), []


@st.composite
def entries(draw) -> list[str]:
    """The lines of one entry as a node (or docker compose, or the Docker API) writes them."""
    ts = draw(st.sampled_from(TIMES))
    s1, s2, s3 = draw(st.sampled_from(SEPARATORS))
    level = draw(st.sampled_from(LEVELS))
    logger = draw(st.sampled_from(LOGGERS))
    msg, cont = draw(messages())
    header = f"{ts}{s1}{level}{s2}{logger + s3 if logger else ''}{msg}"
    if draw(st.integers(0, 9)) == 0:  # no level at all: a date-started line
        header = f"{ts.replace(' ', 'T')} {msg}"
    if draw(st.integers(0, 9)) == 0:
        header = "\x1b[32m" + header + "\x1b[0m"
    lines = [header, *cont]
    prefix = draw(st.sampled_from(["", "", "", "runner-node  | ", "runner-node | ", "2024-01-15T10:30:00.123456789Z "]))
    return [prefix + line for line in lines]


GARBAGE_LINES = st.one_of(
    st.sampled_from(["", "   ", "{", "}", "]", "\t", "    at x (y.js:1:1)", "2024-01-15", "2024-01-15 10:30:00",
                     "2024-01-15 10:30:00 ", "runner-node  | ", "\x1b[", "line with\rcarriage return",
                     "2024-01-15 10:30:00 info: " + "x" * (MAX_LINE_CHARS + 10), "y" * (MAX_LINE_CHARS + 1)]),
    st.text(st.characters(blacklist_characters="\n\r"), max_size=60),
)  # fmt: skip
LINES = st.lists(st.one_of(entries(), GARBAGE_LINES.map(lambda line: [line])), max_size=40).map(
    lambda parts: [line for part in parts for line in part]
)


def run_feed(lines: list[str]) -> tuple[list, LogParser]:
    parser = LogParser()
    out: list = []
    for line in lines:
        out += parser.feed(line)
    out += parser.flush()
    return out, parser


def run_batches(lines: list[str], cuts: list[int]) -> tuple[list, LogParser]:
    parser = LogParser()
    out: list = []
    points = sorted({c % (len(lines) + 1) for c in cuts}) + [len(lines)]
    last = 0
    for p in points:
        out += parser.feed_lines(lines[last:p])
        last = p
    out += parser.flush()
    return out, parser


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=LINES, cuts=st.lists(st.integers(0, 1000), max_size=6))
def test_feed_and_feed_lines_give_the_same_records(lines, cuts):
    one, a = run_feed(lines)
    batched, b = run_batches(lines, cuts)
    assert batched == one
    assert b.stats == a.stats
    assert (b.wallet, b.node_version) == (a.wallet, a.node_version)
