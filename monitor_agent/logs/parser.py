"""The runner-node log parser: lines in, task lifecycle events and local records out. No I/O.

A log *entry* starts with a line `YYYY-MM-DD HH:MM:SS <level>: <logger> <message>`; every line
that does not start with a date continues the entry before it (pretty-printed JSON, command
output). An entry is interpreted once its last line is known, that is when the next entry starts
or when the caller `flush()`es (a follower does so when the node goes quiet).

Privacy: the logger name embeds the node's wallet address. It is dropped here; the wallet, task
ids and hashes, block hashes and task input only ever go into `TaskEvent.private`.

Speed: one compiled header regex per line; continuation lines are only appended; JSON is decoded
only for the few message shapes that carry it (task_created, metrics, invoices).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from ..model import TaskEvent
from . import fields as F
from .records import Invoice, LogEntry, ParseStats, SlotUsage

MAX_LINE_CHARS = 64 * 1024  # one line longer than this is cut (and counted)
MAX_ENTRY_LINES = 2000  # continuation lines kept per entry
MAX_ENTRY_CHARS = 1024 * 1024  # text kept per entry
MAX_RAW_CHARS = 8 * 1024  # text of a raw entry handed to the local log view
MAX_TRACKED = 4096  # executions remembered for attributing later messages

LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error"}

# The canonical entry header; group 1 is the timestamp, 2 the level, 3 the logger (optional).
HEADER_RE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:[.,]\d{1,9})?Z? ([A-Za-z]+) ?: ?(?:(@\S+) ?)?(.*)"
)
_header = HEADER_RE.match
_LEVEL_OF = {"info": "info", "debug": "debug", "warn": "warn", "error": "error"}
_DIGITS = frozenset("0123456789")
# How continuation lines start (JSON, stack traces, blank): never a header nor a compose prefix.
_CONT_FIRST = frozenset(' \t{}[]",\r\n')
# Any other line starting with a date also starts an entry (level unknown).
_DATE_RE = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)\S* ?")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# `runner-node  | ` as docker compose prints it.
_COMPOSE_RE = re.compile(r"[A-Za-z0-9][\w.-]*\s*\| ?")
# Docker's `timestamps=1` prefix: RFC 3339 with nanoseconds, always UTC.
_DOCKER_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d) ")
_LOGGER_WALLET_RE = re.compile(r"-(0x[0-9a-fA-F]{40})(?![0-9a-fA-F])")
_UUID_FULL = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_USING_RE = re.compile(r"(\d+)/(\d+)")
_INVOICE_ID_RE = re.compile(r"\b\d{18,30}\b")

_METRICS_MARK = "Command execution stdout:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOTHING: tuple = ()


class _Exec:
    """What the parser remembers about one execution to attribute later messages to it."""

    __slots__ = ("task_id", "started", "done", "has_metrics")

    def __init__(self, task_id: str | None):
        self.task_id = task_id
        self.started = False
        self.done: str | None = None
        self.has_metrics = False


class LogParser:
    """Incremental parser of one node's log stream.

    `feed(line, pos)` returns the records completed by that line (usually none);
    `flush()` returns those of the entry still open. `pos` is an opaque position of the line
    in its source; `resume_pos` is the position of the first line of the open entry, which is
    where a reader must resume after a restart so that no entry is lost or split.
    """

    def __init__(self) -> None:
        self._stats = ParseStats()
        self._lines = 0
        self.wallet: str | None = None  # private: the node's own address, for the local view only
        self.node_version: str | None = None
        # The open entry: (pos, timestamp text, level, logger, first-line message), or None.
        self._hdr: tuple | None = None
        self._cont: list[str] | None = None
        self._chars = 0
        self._last_ts = ""
        self._last_at = _EPOCH
        self._times: dict[str, datetime] = {}
        self._last_logger: str | None = None
        self._execs: dict[str, _Exec] = {}
        self._by_task: dict[str, str] = {}
        self._await_start: list[str] = []

    @property
    def stats(self) -> ParseStats:
        self._stats.lines = self._lines
        return self._stats

    # ---- lines -> entries ----

    @property
    def pending(self) -> bool:
        """Whether an entry is open (waiting for its next line or a flush)."""
        return self._hdr is not None

    @property
    def resume_pos(self) -> Any:
        """Position of the open entry's first line, or None when no entry is open."""
        return None if self._hdr is None else self._hdr[0]

    def feed(self, line: str, pos: Any = None) -> list | tuple:
        """Take one line (with or without its newline); return the records it completed."""
        self._lines += 1
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS]
            self._stats.truncated += 1
        if "\x1b" in line:
            line = _ANSI_RE.sub("", line)
        c = line[:1]
        if c not in _CONT_FIRST:
            if c not in _DIGITS:
                m = _COMPOSE_RE.match(line)
                if m is not None:
                    line = line[m.end() :]
                    c = line[:1]
            if c in _DIGITS:
                if line[10:11] == "T":
                    m = _DOCKER_TS_RE.match(line)
                    if m is not None:
                        line = line[m.end() :]
                m = _header(line)
                if m is not None:
                    ts, level, logger, msg = m.groups()
                    out = _NOTHING if self._hdr is None else self._finish()
                    self._hdr = (pos, ts, _LEVEL_OF.get(level) or LEVELS.get(level.lower()), logger, msg)
                    self._chars = len(msg)
                    return out
                m = _DATE_RE.match(line)
                if m is not None:
                    out = _NOTHING if self._hdr is None else self._finish()
                    msg = line[m.end() :].rstrip("\r\n")
                    self._hdr = (pos, m.group(1) + " " + m.group(2), None, None, msg)
                    self._chars = len(msg)
                    return out
        # A continuation line.
        cont = self._cont
        if cont is not None:
            if len(cont) < MAX_ENTRY_LINES and self._chars < MAX_ENTRY_CHARS:
                text = line.rstrip("\r\n")
                cont.append(text)
                self._chars += len(text)
            else:
                self._stats.truncated += 1
            return _NOTHING
        text = line.rstrip("\r\n")
        if self._hdr is not None:
            self._cont = [text]
            self._chars += len(text)
            return _NOTHING
        if not text.strip():
            return _NOTHING
        self._stats.orphan_lines += 1
        self._stats.raw_entries += 1
        return [LogEntry(None, None, text[:MAX_RAW_CHARS], "orphan")]

    def feed_lines(self, lines: Iterable[str]) -> list:
        """Take a batch of lines (what readers use); return the records they completed.

        Afterwards `resume_pos` is the index in this batch of the open entry's first line, -1 if
        that entry began in an earlier batch, or None when no entry is open.
        """
        if self._hdr is not None and self._hdr[0] != -1:
            self._hdr = (-1, *self._hdr[1:])
        out: list = []
        feed = self.feed
        for i, line in enumerate(lines):
            got = feed(line, i)
            if got:
                out.extend(got)
        return out

    def flush(self) -> list | tuple:
        """Close the open entry (end of input, or the node went quiet) and return its records."""
        return _NOTHING if self._hdr is None else self._finish()

    def feed_all(self, lines: Iterable[str]) -> Iterator[Any]:
        """Every record of `lines`, the last entry included."""
        feed = self.feed
        for line in lines:
            out = feed(line)
            if out:
                yield from out
        yield from self.flush()

    # ---- entries -> records ----

    def _at(self, ts: str) -> datetime:
        at = self._times.get(ts)
        if at is None:
            try:
                at = datetime(
                    int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]), int(ts[17:19]),
                    tzinfo=UTC,
                )  # fmt: skip
            except ValueError:
                return self._last_at  # an impossible date: keep the order of what we know
            if len(self._times) > 4096:
                self._times.clear()
            self._times[ts] = at
        self._last_ts = ts
        self._last_at = at
        return at

    def _finish(self) -> list:
        _, ts, level, logger, msg = self._hdr
        self._hdr = None
        if msg[-1:] == "\r":
            msg = msg[:-1]
        cont = self._cont
        self._cont = None
        st = self._stats
        st.entries += 1
        at = self._last_at if ts == self._last_ts else self._at(ts)
        if logger is not None and logger != self._last_logger:
            self._note_logger(logger)
        out: list = []
        c = msg[:1]
        if c == "M":
            if msg.startswith("Message received from task_created"):
                self._on_received(at, level, msg, cont, out)
                return out
            if msg.startswith("Message published to"):
                return out
        elif c == "S":
            if msg.startswith("Semaphore "):
                self._on_slot(at, level, msg, cont, out)
                return out
            if msg.startswith("Starting task execution"):
                self._on_started(at, msg, cont, out)
                return out
        elif c == "E":
            if msg.startswith("Execution "):
                self._on_execution(at, level, msg, cont, out)
                return out
        elif c == "T":
            if msg.startswith("Task ") and "downloaded" in msg:
                return out  # a step of the lifecycle with nothing to count
        elif c == "N":
            if msg.startswith("Node with address"):
                m = F.WALLET_RE.search(msg)
                if m is not None:
                    self.wallet = m.group(0)
                return out
        if "InvoiceSubscriber" in msg:
            self._on_invoice(at, level, msg, cont, out)
        elif cont is not None and self._metrics_index(cont) is not None:
            self._on_execution(at, level, msg, cont, out)
        elif level == "error" and self._on_error(at, msg, cont, out):
            pass
        else:
            self._raw(at, level, msg, cont, out, "error" if level == "error" else "unknown")
        return out

    def _note_logger(self, logger: str) -> None:
        self._last_logger = logger
        m = _LOGGER_WALLET_RE.search(logger)
        if m is not None:
            self.wallet = m.group(1)
        if ":" in logger:
            self.node_version = logger.rpartition(":")[2][:64]

    def _raw(self, at, level, msg, cont, out, reason: str) -> None:
        text = msg if cont is None else msg + "\n" + "\n".join(cont)
        if len(text) > MAX_RAW_CHARS:
            text = text[:MAX_RAW_CHARS]
        self._stats.raw_entries += 1
        out.append(LogEntry(at, level, text, reason))

    def _json_after(self, msg: str, cont: list[str] | None, start: int) -> dict | None:
        brace = msg.find("{", start)
        if brace < 0:
            if cont is None:
                return None
            text = "\n".join(cont)
            brace = text.find("{")
            if brace < 0:
                return None
            return F.decode_json_object(text[brace:])
        text = msg[brace:] if cont is None else msg[brace:] + "\n" + "\n".join(cont)
        return F.decode_json_object(text)

    def _track(self, exec_id: str, task_id: str | None) -> _Exec:
        ex = self._execs.get(exec_id)
        if ex is None:
            if len(self._execs) >= MAX_TRACKED:
                old_id = next(iter(self._execs))
                old = self._execs.pop(old_id)
                if old.task_id is not None:
                    self._by_task.pop(old.task_id, None)
            ex = self._execs[exec_id] = _Exec(task_id)
        elif task_id is not None and ex.task_id is None:
            ex.task_id = task_id
        if task_id is not None:
            self._by_task[task_id] = exec_id
        return ex

    def _on_received(self, at, level, msg, cont, out) -> None:
        obj = self._json_after(msg, cont, len("Message received from task_created"))
        if obj is None:
            self._stats.invalid_json += 1
            self._raw(at, level, msg, cont, out, "invalid_json")
            return
        task_id = F.find(obj, "taskId", "taskPath")
        task_id = task_id if isinstance(task_id, str) else None
        exec_id = F.find(obj, "executionId", "execution_id")
        if not isinstance(exec_id, str) or not exec_id:
            if task_id is None:
                self._stats.unattributed += 1
                self._raw(at, level, msg, cont, out, "unknown")
                return
            exec_id = task_id  # no execution id: the task id is the best local key there is
        private: dict[str, Any] = {}
        if self.wallet is not None:
            private["wallet"] = self.wallet
        if task_id is not None:
            private["task_id"] = F.short_text(task_id)
        task_path = F.find(obj, "taskPath")
        if isinstance(task_path, str) and task_path != task_id:
            private["task_path"] = F.short_text(task_path)
        block_hash = F.find(obj, "blockHash")
        if block_hash is not None:
            private["block_hash"] = F.short_text(block_hash)
        task_input = F.find(obj, "input")
        if task_input is not None:
            private["input"] = F.short_text(task_input if isinstance(task_input, str) else str(task_input))
        chain_id = F.as_int(F.find(obj, "chainId", "chain_id"))
        block = F.as_int(F.find(obj, "blockNumber", "block_number"))
        ex = self._track(exec_id, task_id)
        if not ex.started:
            self._await_start.append(exec_id)
            if len(self._await_start) > 256:
                del self._await_start[0]
        self._stats.received += 1
        out.append(
            TaskEvent(
                "received",
                exec_id,
                at,
                chain_id=chain_id if chain_id is not None and chain_id >= 0 else None,
                block_number=block if block is not None and block >= 0 else None,
                task_type=F.task_type_of(task_id) or F.task_type_of(task_path),
                private=private,
            )
        )

    def _exec_named(self, msg: str, cont: list[str] | None) -> str | None:
        """The execution an entry is about: a UUID in its first line, else one of its task ids."""
        if msg.startswith("Execution ") and _UUID_FULL(msg, 10, 46) is not None:
            return msg[10:46]  # the usual shape, without scanning
        m = F.UUID_RE.search(msg)
        if m is not None:
            return m.group(0)
        m = F.TASK_ID_RE.search(msg)
        if m is not None:
            return self._by_task.get(m.group(0))
        return None

    def _on_started(self, at, msg, cont, out) -> None:
        exec_id = self._exec_named(msg, cont)
        if exec_id is None and cont is not None:
            exec_id = self._exec_named("\n".join(cont), None)
        if exec_id is None:
            # The message names nothing: the oldest task received and not started yet.
            while self._await_start:
                cand = self._await_start.pop(0)
                ex = self._execs.get(cand)
                if ex is not None and not ex.started:
                    exec_id = cand
                    break
        if exec_id is None:
            self._stats.unattributed += 1
            return
        ex = self._track(exec_id, None)
        if ex.started:
            return
        ex.started = True
        if exec_id in self._await_start:
            self._await_start.remove(exec_id)
        self._stats.started += 1
        out.append(TaskEvent("started", exec_id, at))

    @staticmethod
    def _metrics_index(cont: list[str]) -> int | None:
        for i, text in enumerate(cont):
            if _METRICS_MARK in text:
                return i
        return None

    def _running(self) -> str | None:
        """The most recent execution that started and has not finished (for unnamed metrics)."""
        for exec_id in reversed(self._execs):
            ex = self._execs[exec_id]
            if ex.started and ex.done is None:
                return exec_id
        return None

    def _on_execution(self, at, level, msg, cont, out) -> None:
        exec_id = self._exec_named(msg, None)
        metrics: dict | None = None
        bad_metrics = False
        if cont is not None:
            i = self._metrics_index(cont)
            if i is not None:
                first = cont[i]
                tail = first[first.index(_METRICS_MARK) + len(_METRICS_MARK) :]
                text = tail if i == len(cont) - 1 else tail + "\n" + "\n".join(cont[i + 1 :])
                brace = text.find("{")
                metrics = F.decode_json_object(text[brace:]) if brace >= 0 else None
                if metrics is None:
                    bad_metrics = True
        named = msg.startswith("Execution ")
        says_completed = named and " completed" in msg
        says_failed = level == "error" or (named and " failed" in msg)
        if not (says_completed or says_failed or metrics is not None):
            if bad_metrics:
                self._stats.invalid_json += 1
                self._raw(at, level, msg, cont, out, "invalid_json")
            else:
                self._raw(at, level, msg, cont, out, "unknown")
            return
        if exec_id is None:
            exec_id = self._running()
        if exec_id is None:
            self._stats.unattributed += 1
            self._raw(at, level, msg, cont, out, "invalid_json" if bad_metrics else "unknown")
            if bad_metrics:
                self._stats.invalid_json += 1
            return
        if bad_metrics:
            # The completion itself is known; only its figures are lost. Keep the text for the operator.
            self._stats.invalid_json += 1
            self._raw(at, level, msg, cont, out, "invalid_json")
        error = msg if says_failed else None
        self._terminal(at, exec_id, metrics, error, out)
        if level == "error":
            self._raw(at, level, msg, cont, out, "error")  # the stack trace, for the local log view

    def _terminal(self, at, exec_id: str, metrics: dict | None, error: str | None, out) -> None:
        ex = self._track(exec_id, None)
        if ex.done is not None and (ex.has_metrics or metrics is None):
            return  # already reported, and this adds nothing
        ev = TaskEvent("completed", exec_id, at)
        if metrics is not None:
            ex.has_metrics = True
            self._apply_metrics(ev, metrics)
        if error is not None:
            ev.private["error"] = F.short_text(error, 500)
        # Failed: a non-zero exit code, or an error naming the execution. No exit code is not failure.
        failed = error is not None or (ev.exit_code is not None and ev.exit_code != 0)
        if failed:
            ev.kind = "failed"
        if ex.done is None:
            if failed:
                self._stats.failed += 1
            else:
                self._stats.completed += 1
        ex.done = ev.kind
        ex.started = True
        out.append(ev)

    @staticmethod
    def _apply_metrics(ev: TaskEvent, metrics: dict) -> None:
        """Copy the figures of a `Command execution stdout` object onto a terminal event."""
        if "metering" not in metrics and "wasi" not in metrics:
            metrics = F.nest_dotted(metrics)  # some versions print flat `wasi.exitCode` keys
        as_int = F.as_int
        elapsed = as_int(metrics.get("elapsed"))
        if elapsed is not None and elapsed >= 0:
            ev.execution_time_ms = round(elapsed / 1_000_000)
        private = ev.private
        wasi = metrics.get("wasi")
        if type(wasi) is dict:
            ev.exit_code = as_int(wasi.get("exitCode"))
        metering = metrics.get("metering")
        if type(metering) is dict:
            last = metering.get("last")
            if type(last) is dict:
                ev.steps = as_int(last.get("steps"))
            peak = metering.get("peak")
            if type(peak) is dict:
                ev.memory_peak = as_int(peak.get("memory"))
                for key, name in (("call", "peak_call"), ("frame", "peak_frame")):
                    value = as_int(peak.get(key))
                    if value is not None:
                        private[name] = value
            limits = metering.get("limits")
            if type(limits) is dict:
                for key in ("gas", "memory", "call", "frame"):
                    value = as_int(limits.get(key))
                    if value is not None:
                        private[key + "_limit"] = value
        execution = metrics.get("execution")
        if type(execution) is dict:
            prepare = execution.get("prepare")
            if type(prepare) is dict:
                ev.cached = F.as_bool(prepare.get("cached"))
            wasm = execution.get("wasm")
            if type(wasm) is dict:
                size = as_int(wasm.get("size"))
                if size is not None:
                    private["wasm_size"] = size
                wasm_hash = wasm.get("hash")
                if isinstance(wasm_hash, str):
                    private["wasm_hash"] = F.short_text(wasm_hash, 200)

    def _on_error(self, at, msg, cont, out) -> bool:
        """An error-level entry: a failure if it names a known execution (or says it is one)."""
        exec_id = self._exec_named(msg, None)
        if exec_id is None and cont is not None:
            exec_id = self._exec_named("\n".join(cont[:20]), None)
        if exec_id is None:
            return False
        if exec_id not in self._execs and "xecution" not in msg and "task" not in msg.lower():
            return False
        self._terminal(at, exec_id, None, msg, out)
        self._raw(at, "error", msg, cont, out, "error")
        return True

    def _on_slot(self, at, level, msg, cont, out) -> None:
        name = msg[10:].partition(" ")[0]
        i = msg.find("Using slot ", 10)
        m = _USING_RE.match(msg, i + 11) if i >= 0 else None
        if m is not None:
            self._stats.slot_usages += 1
            out.append(SlotUsage(at, name, "acquired", int(m.group(1)), int(m.group(2))))
            return
        i = msg.find("Released slot (", 10)
        m = _USING_RE.match(msg, i + 15) if i >= 0 else None
        if m is not None:
            self._stats.slot_usages += 1
            out.append(SlotUsage(at, name, "released", int(m.group(1)), int(m.group(2))))
            return
        self._raw(at, level, msg, cont, out, "unknown")

    def _on_invoice(self, at, level, msg, cont, out) -> None:
        obj = self._json_after(msg, cont, msg.index("InvoiceSubscriber"))
        has_json = "{" in msg or (cont is not None and any("{" in c for c in cont))
        if obj is None and has_json:
            self._stats.invalid_json += 1
            self._raw(at, level, msg, cont, out, "invalid_json")
            return
        if obj is not None:
            exec_id = F.find(obj, "executionId")
            invoice_id = F.find(obj, "invoiceId")
            items = F.find(obj, "lineItem", "lineItems")
        else:
            exec_id = invoice_id = items = None
        if not isinstance(exec_id, str):
            m = F.UUID_RE.search(msg)
            exec_id = m.group(0) if m is not None else None
        if invoice_id is None:
            m = _INVOICE_ID_RE.search(msg)
            invoice_id = m.group(0) if m is not None else None
        if invoice_id is None and items is None:
            self._raw(at, level, msg, cont, out, "unknown")  # a status line of the subscriber
            return
        inv = Invoice(at, exec_id, str(invoice_id) if invoice_id is not None else None)
        if isinstance(items, list):
            steps = peak = None
            for item in items:
                if not isinstance(item, dict):
                    continue
                s = F.as_int(item.get("total_steps_computed"))
                p = F.as_int(item.get("peak_memory_used"))
                steps = s if steps is None else (steps + s if s is not None else steps)
                peak = p if peak is None else (max(peak, p) if p is not None else peak)
            inv.steps, inv.memory_peak = steps, peak
            inv.private["line_items"] = items[:16]
        if obj is not None:
            task_id = F.find(obj, "taskId")
            if isinstance(task_id, str):
                inv.private["task_id"] = F.short_text(task_id)
        self._stats.invoices += 1
        out.append(inv)


def parse_lines(lines: Iterable[str]) -> tuple[list, ParseStats]:
    """Parse a whole finite log (convenience for tools and tests): every record, and the counters."""
    parser = LogParser()
    records = list(parser.feed_all(lines))
    return records, parser.stats
