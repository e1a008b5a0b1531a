"""Property tests: arbitrary bytes and arbitrary splits never raise, and never lose a good entry."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor_agent.logs import LogParser
from monitor_agent.model import TaskEvent
from monitor_agent.sources.docker_stream import ChunkedDecoder, Demuxer, LineSplitter
from monitor_agent.sources.files import Reader

LOGGER = "@truebit/worker-runner-node-0x5b2f8e3a9c41d07e6f1a2b3c4d5e6f708192a3b4:1.4.2"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Garbage that looks like logs: pieces of real lines, brackets, colours, dates, NULs, bad UTF-8.
_PIECES = st.sampled_from([
    b"2024-01-15 10:00:00 info: ", b"2024-01-15 10:00:0", LOGGER.encode(), b" Message received from task_created: {",
    b"Execution ", b" completed", b"Command execution stdout: {\"elapsed\":", b"\x1b[32m", b"\x1b[", b"runner-node  | ",
    b"2024-01-15T10:00:00.000000001Z ", b"{", b"}", b"\"", b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"   ",
    b"Semaphore Executor processing started - Using slot ", b"/4", b"[InvoiceSubscriber] ", b"error: ",
    b"Starting task execution", b"Released slot (", b"0x", b"js_" + b"a" * 64,
])  # fmt: skip
GARBAGE = st.one_of(st.binary(max_size=400), st.lists(_PIECES, max_size=30).map(b"".join))


def good_entry(exec_id: str, pretty: bool) -> tuple[bytes, dict]:
    task = {"executionId": exec_id, "taskId": "rs_" + "c" * 64, "chainId": "43113", "blockNumber": 28123456,
            "blockHash": "0x" + "d" * 64, "input": "{}"}  # fmt: skip
    body = json.dumps(task, indent=2) if pretty else json.dumps(task)
    metrics = {"elapsed": "245000000", "wasi": {"exitCode": 0}, "metering": {"last": {"steps": 7}}}
    text = (
        f"2024-01-15 10:30:00 info: {LOGGER} Message received from task_created: {body}\n"
        f"2024-01-15 10:30:01 info: {LOGGER} Starting task execution...\n"
        f"2024-01-15 10:30:02 info: {LOGGER} Execution {exec_id} completed\n"
        f"Command execution stdout: {json.dumps(metrics, indent=2 if pretty else None)}\n"
        f"2024-01-15 10:30:02 info: {LOGGER} Message published to compute_outcome\n"
    )
    return text.encode(), task


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@FAST
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_arbitrary_bytes_never_raise(data, cuts):
    reader = Reader(LogParser(), 0)
    for piece in split_at(data, cuts):
        reader.feed(piece)
    reader.finish()
    assert reader.consumed == len(data) + (0 if data.endswith(b"\n") or not data else 1)
    # The line API too, on whatever lines the bytes make.
    parser = LogParser()
    for line in data.decode("utf-8", "replace").splitlines(keepends=True):
        parser.feed(line)
    parser.flush()


@FAST
@given(garbage=GARBAGE, pretty=st.booleans(), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       trailing=GARBAGE)  # fmt: skip
def test_good_entry_after_garbage_is_never_lost(garbage, pretty, cuts, trailing):
    exec_id = str(uuid.uuid4())
    entry, task = good_entry(exec_id, pretty)
    data = garbage + b"\n" + entry + trailing
    reader = Reader(LogParser(), 0)
    records: list = []
    for piece in split_at(data, cuts):
        records += reader.feed(piece)
    records += reader.finish()
    mine = [r for r in records if isinstance(r, TaskEvent) and r.execution_id == exec_id]
    kinds = [r.kind for r in mine]
    assert kinds[:1] == ["received"] and "completed" in kinds
    received = mine[0]
    assert (received.chain_id, received.block_number, received.task_type) == (43113, 28123456, "rs")
    assert received.private["task_id"] == task["taskId"]
    done = next(r for r in mine if r.kind == "completed")
    assert (done.execution_time_ms, done.exit_code, done.steps) == (245, 0, 7)


def frames(lines: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for stream, payload in lines:
        out += bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload
    return out


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = b"", 0
    for size in sizes + [len(body)]:
        piece = body[i : i + max(1, size)]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        i += len(piece)
    return out + b"0\r\n\r\n"


@FAST
@given(
    msgs=st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" "))),
                  max_size=20),
    sizes=st.lists(st.integers(1, 300), max_size=10),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)  # fmt: skip
def test_docker_stream_survives_any_split(msgs, sizes, cuts):
    payloads = [
        (s, f"2024-01-15T10:30:{i % 60:02d}.{i:09d}Z ".encode() + m + b"\n") for i, (s, m) in enumerate(msgs)
    ]
    wire = chunked(frames(payloads), sizes)
    dec, demux = ChunkedDecoder(), Demuxer()
    splitters = {1: LineSplitter(), 2: LineSplitter()}
    got: dict[int, list] = {1: [], 2: []}
    for piece in split_at(wire, cuts):
        for stream, payload in demux.feed(dec.feed(piece)):
            got[stream] += [line for _, line in splitters[stream].feed(payload)]
    assert dec.done
    for stream in (1, 2):
        assert got[stream] == [m for s, m in msgs if s == stream]
