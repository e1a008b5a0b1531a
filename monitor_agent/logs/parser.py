"""The runner-node log parser: lines in, task lifecycle events and local records out. No I/O.

A log *entry* starts with a line `YYYY-MM-DD HH:MM:SS <level>: <logger> <message>`; every line
that does not start with a date continues the entry before it (pretty-printed JSON, command
output). An entry is interpreted once its last line is known, that is when the next entry starts
or when the caller `flush()`es (a follower does so when the node goes quiet).

Privacy: the logger name embeds the node's wallet address. It is dropped here; the wallet, task
ids and hashes, block hashes and task input only ever go into `TaskEvent.private`.

Speed: batches of plain lines (the usual case) skip the per-line cleaning; a header whose timestamp
and logger text were seen before is recognised without the regex, and an entry's continuation
lines are one slice of the batch. JSON is decoded only for the few message shapes that carry it
(task_created, metrics, invoices). The batch path (`feed_lines` -> `_feed_plain`/`_classify`) and the
line path (`feed`) must give the same records, counters and wallet for any lines cut into any
batches: tests/ingest/test_parser_paths_agree.py generates such sequences (hypothesis) and checks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
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
# An entry with fewer continuation lines than this cannot reach MAX_ENTRY_CHARS (lines are capped).
_SAFE_CONT = MAX_ENTRY_CHARS // MAX_LINE_CHARS
_LIMIT_NAMES = (
    ("gas", "gas_limit"),
    ("memory", "memory_limit"),
    ("call", "call_limit"),
    ("frame", "frame_limit"),
)
_SECONDS = {f":{n:02d}": timedelta(seconds=n) for n in range(60)}
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
    `feed_lines(batch)` is the same as feeding every line of the batch, only much faster.
    """

    def __init__(self) -> None:
        self._stats = ParseStats()
        self._lines = 0
        self.wallet: str | None = None  # private: the node's own address, for the local view only
        self.node_version: str | None = None
        # The open entry: (pos, time, level, logger, first-line message), or None.
        self._hdr: tuple | None = None
        self._cont: list[str] | None = None
        self._chars = 0
        self._last_at = _EPOCH
        self._times: dict[str, datetime] = {}  # `YYYY-MM-DD HH:MM:SS` -> time
        self._minutes: dict[str, datetime] = {}  # `YYYY-MM-DD HH:MM` of a valid time -> its minute
        # Header shapes seen (text between the timestamp and the message, e.g. ` info: @truebit/... `),
        # by the two characters after the timestamp: a line with a known timestamp and a known shape
        # is a header without running the regex (see `_learn_shape`).
        self._shapes: dict[str, tuple[str, int, str | None, str]] = {}
        self._last_logger: str | None = None
        self._execs: dict[str, _Exec] = {}
        self._by_task: dict[str, str] = {}
        self._await_start: list[str] = []
        self._slot_memo: dict[str, tuple | None] = {}
        self._status_memo: set[str] = set()

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
                    if msg[-1:] == "\r":
                        msg = msg[:-1]
                    self._hdr = (
                        pos,
                        self._at(ts),
                        _LEVEL_OF.get(level) or LEVELS.get(level.lower()),
                        logger,
                        msg,
                    )
                    self._chars = len(msg)
                    return out
                m = _DATE_RE.match(line)
                if m is not None:
                    out = _NOTHING if self._hdr is None else self._finish()
                    msg = line[m.end() :].rstrip("\r\n")
                    self._hdr = (pos, self._at(m.group(1) + " " + m.group(2)), None, None, msg)
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
        return self._orphan(text, []) or _NOTHING

    def _orphan(self, text: str, out: list) -> list:
        """A continuation line with no entry before it: kept raw (blank ones are dropped)."""
        if text.strip():
            self._stats.orphan_lines += 1
            self._stats.raw_entries += 1
            out.append(LogEntry(None, None, text[:MAX_RAW_CHARS], "orphan"))
        return out

    def feed_lines(self, lines: Iterable[str]) -> list:
        """Take a batch of lines (what readers use); return the records they completed.

        Afterwards `resume_pos` is the index in this batch of the open entry's first line, -1 if
        that entry began in an earlier batch, or None when no entry is open.
        """
        if self._hdr is not None and self._hdr[0] != -1:
            self._hdr = (-1, *self._hdr[1:])
        if type(lines) is not list:
            lines = list(lines)
        if not lines:
            return []
        # The batch path handles plain lines: over-long lines are cut and colour codes removed here,
        # as `feed` would do line by line. A batch with carriage returns (rare) goes line by line.
        text = "\n".join(lines)
        if "\r" in text:
            out: list = []
            feed = self.feed
            for i, line in enumerate(lines):
                got = feed(line, i)
                if got:
                    out.extend(got)
            return out
        if len(text) > MAX_LINE_CHARS and max(map(len, lines)) > MAX_LINE_CHARS:
            cut = [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] for line in lines]
            self._stats.truncated += sum(1 for a, b in zip(lines, cut, strict=True) if a is not b)
            lines = cut
            text = "\n".join(lines)
        if "\x1b" in text:
            lines = _without_ansi(lines, text)
        return self._feed_plain(lines)

    def _feed_plain(self, lines: list[str]) -> list:
        """`feed_lines` for lines without newlines, carriage returns, ANSI codes or excess length.

        Entries are found by their header line; their continuation lines are taken as one slice of
        the batch instead of one by one. A header whose timestamp and shape were seen before is
        recognised with two dict look-ups and a `startswith` instead of the header regex.
        """
        out: list = []
        entry = self._entry
        classify = self._classify
        compose = _COMPOSE_RE.match
        shape_of = self._shapes.get
        time_of = self._times.get
        digits = _DIGITS
        cont_first = _CONT_FIRST
        safe = _SAFE_CONT
        work = lines  # copied on the first line whose text changes (a compose prefix, say)
        carried = self._hdr is not None  # an entry from the previous batch is still open
        # The entry opened in this batch (its header line is work[cur_i]); cur_msg None: none yet.
        cur_at = cur_level = cur_logger = cur_msg = None
        cur_i = -1
        entries = 0
        i = -1
        hdr: Any  # _classify's header tuple or changed line text (`type(hdr) is tuple` tells them apart)
        for line in lines:
            i += 1
            c = line[:1]
            if c in digits:
                hdr = None
                shape = shape_of(line[19:21])
                if shape is not None and line.startswith(shape[0], 19):
                    at = time_of(line[:19])
                    if at is None:
                        at = self._new_second(line)
                    if at is not None:
                        level = shape[2]
                        logger = shape[3]
                        msg = line[shape[1] :]
                    else:
                        hdr = classify(line)
                else:
                    hdr = classify(line)
                if hdr is not None:
                    if type(hdr) is tuple:
                        at, level, logger, msg = hdr
                    else:  # a continuation line (its text may have changed), or an orphan
                        if hdr is not line:
                            if work is lines:
                                work = list(lines)
                            work[i] = hdr
                        if cur_msg is None and not carried:
                            self._orphan(hdr, out)
                        continue
            elif c in cont_first or compose(line) is None:
                if cur_msg is None and not carried:
                    self._orphan(line, out)
                continue
            else:  # a compose prefix
                hdr = classify(line)
                if type(hdr) is tuple:
                    at, level, logger, msg = hdr
                else:
                    if work is lines:
                        work = list(lines)
                    work[i] = hdr
                    if cur_msg is None and not carried:
                        self._orphan(hdr, out)
                    continue
            # A header: the entry before it is complete.
            entries += 1
            if cur_msg is not None:
                n = i - cur_i - 1
                if n == 0:
                    entry(cur_at, cur_level, cur_logger, cur_msg, None, out)
                elif n < safe:
                    entry(cur_at, cur_level, cur_logger, cur_msg, work[cur_i + 1 : i], out)
                else:
                    cont = self._capped(len(cur_msg), None, work[cur_i + 1 : i])[0]
                    entry(cur_at, cur_level, cur_logger, cur_msg, cont, out)
            elif carried:
                carried = False
                if i:
                    self._cont, self._chars = self._capped(self._chars, self._cont, work[:i])
                out.extend(self._finish())
            cur_at, cur_level, cur_logger, cur_msg = at, level, logger, msg
            cur_i = i
            self._last_at = at  # type: ignore[assignment]  # a header's time: never None here
        self._lines += i + 1
        if cur_msg is not None:
            self._stats.entries += entries - 1
            self._hdr = (cur_i, cur_at, cur_level, cur_logger, cur_msg)
            self._cont, self._chars = self._capped(len(cur_msg), None, work[cur_i + 1 :])
        elif carried:
            self._cont, self._chars = self._capped(self._chars, self._cont, work)
        return out

    def _capped(self, chars: int, cont: list[str] | None, more: list[str]) -> tuple[list[str] | None, int]:
        """`cont` extended by the continuation lines `more` within the entry's size caps (cuts counted)."""
        if not more:
            return cont, chars
        held = 0 if cont is None else len(cont)
        total = chars + sum(map(len, more))
        if held + len(more) <= MAX_ENTRY_LINES and total - len(more[-1]) < MAX_ENTRY_CHARS:
            if cont is None:
                return more, total
            cont.extend(more)
            return cont, total
        if cont is None:
            cont = []
        for text in more:
            if len(cont) < MAX_ENTRY_LINES and chars < MAX_ENTRY_CHARS:
                cont.append(text)
                chars += len(text)
            else:
                self._stats.truncated += 1
        return cont, chars

    def _classify(self, line: str) -> tuple | str:
        """One plain line (see `_feed_plain`): its header `(time, level, logger, message)` if it starts
        an entry, else its text as a continuation line (what `feed` would make of it)."""
        c = line[:1]
        if c not in _CONT_FIRST:
            raw = True
            if c not in _DIGITS:
                m = _COMPOSE_RE.match(line)
                if m is not None:
                    line = line[m.end() :]
                    c = line[:1]
                    raw = False
            if c in _DIGITS:
                if line[10:11] == "T":
                    m = _DOCKER_TS_RE.match(line)
                    if m is not None:
                        line = line[m.end() :]
                        raw = False
                m = _header(line)
                if m is not None:
                    ts, level, logger, msg = m.groups()
                    level = _LEVEL_OF.get(level) or LEVELS.get(level.lower())
                    at = self._at(ts)
                    if raw and logger is not None and m.end(1) == 19 and m.start(4) == m.end(3) + 1:
                        self._learn_shape(line, m.start(4), level, logger)
                    return (at, level, logger, msg)
                m = _DATE_RE.match(line)
                if m is not None:
                    return (self._at(m.group(1) + " " + m.group(2)), None, None, line[m.end() :])
        return line

    def _new_second(self, line: str) -> datetime | None:
        """The time of a header line whose minute was seen before (no regex, no date parsing), or None."""
        base = self._minutes.get(line[:16])
        if base is None:
            return None
        step = _SECONDS.get(line[16:19])
        if step is None:
            return None
        at = base + step
        if len(self._times) > 4096:
            self._times.clear()
        self._times[line[:19]] = at
        return at

    def _learn_shape(self, line: str, msg_at: int, level: str | None, logger: str) -> None:
        """Remember the text between timestamp and message of a header with a logger.

        Sound because the header regex has no choice once that text is fixed: a line made of a
        timestamp already parsed, then exactly this text, parses to the same level and logger
        with the message being the rest of the line (the logger's `\\S+` stops at the same space).
        """
        if len(self._shapes) > 64:
            self._shapes.clear()
        self._shapes[line[19:21]] = (line[19:msg_at], msg_at, level, logger)

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
        """The UTC time of a header's `YYYY-MM-DD HH:MM:SS` (an impossible date: the last time known)."""
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
            if len(self._minutes) > 1024:
                self._minutes.clear()
            self._minutes[ts[:16]] = at.replace(second=0)
        self._last_at = at
        return at

    def _finish(self) -> list:
        """Records of the open entry, which is complete."""
        assert self._hdr is not None  # callers check that an entry is open
        _, at, level, logger, msg = self._hdr
        cont = self._cont
        self._hdr = self._cont = None
        self._stats.entries += 1
        out: list = []
        self._entry(at, level, logger, msg, cont, out)
        return out

    def _entry(self, at, level, logger, msg: str, cont: list[str] | None, out: list) -> None:
        """Append the records of one complete entry to `out`."""
        if logger is not None and logger != self._last_logger:
            self._note_logger(logger)
        c = msg[:1]
        if c == "M":
            if msg.startswith("Message received from task_created"):
                self._on_received(at, level, msg, cont, out)
                return
            if msg.startswith("Message published to"):
                return
        elif c == "S":
            if msg.startswith("Semaphore "):
                self._on_slot(at, level, msg, cont, out)
                return
            if msg.startswith("Starting task execution"):
                self._on_started(at, msg, cont, out)
                return
        elif c == "E":
            if msg.startswith("Execution "):
                self._on_execution(at, level, msg, cont, out)
                return
        elif c == "T":
            if msg.startswith("Task ") and "downloaded" in msg:
                return  # a step of the lifecycle with nothing to count
        elif c == "N":
            if msg.startswith("Node with address"):
                m = F.WALLET_RE.search(msg)
                if m is not None:
                    self.wallet = m.group(0)
                return
        if "InvoiceSubscriber" in msg:
            if cont is None and msg in self._status_memo:
                self._stats.raw_entries += 1  # a status line of the subscriber, seen before
                out.append(LogEntry(at, level, msg if len(msg) <= MAX_RAW_CHARS else msg[:MAX_RAW_CHARS]))
            else:
                self._on_invoice(at, level, msg, cont, out)
        elif cont is not None and self._metrics_index(cont) is not None:
            self._on_execution(at, level, msg, cont, out)
        elif level == "error" and self._on_error(at, msg, cont, out):
            pass
        elif cont is None:
            self._stats.raw_entries += 1
            out.append(
                LogEntry(at, level, msg if len(msg) <= MAX_RAW_CHARS else msg[:MAX_RAW_CHARS],
                         "error" if level == "error" else "unknown")
            )  # fmt: skip
        else:
            self._raw(at, level, msg, cont, out, "error" if level == "error" else "unknown")

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
        obj = self._json_after(msg, cont, 34)  # 34: after "Message received from task_created"
        if obj is None:
            self._stats.invalid_json += 1
            self._raw(at, level, msg, cont, out, "invalid_json")
            return
        find = F.find
        # `find` looks at the top level first: the usual flat shape is read without calling it.
        task_id = obj["taskId"] if "taskId" in obj else find(obj, "taskId", "taskPath")
        if type(task_id) is not str:
            task_id = None
        exec_id = obj["executionId"] if "executionId" in obj else find(obj, "executionId", "execution_id")
        if type(exec_id) is not str or not exec_id:
            if task_id is None:
                self._stats.unattributed += 1
                self._raw(at, level, msg, cont, out, "unknown")
                return
            exec_id = task_id  # no execution id: the task id is the best local key there is
        private: dict[str, Any] = {}
        if self.wallet is not None:
            private["wallet"] = self.wallet
        if task_id is not None:
            private["task_id"] = task_id if len(task_id) <= 4096 else task_id[:4096]
        task_path = obj["taskPath"] if "taskPath" in obj else find(obj, "taskPath")
        if type(task_path) is str and task_path != task_id:
            private["task_path"] = F.short_text(task_path)
        block_hash = obj["blockHash"] if "blockHash" in obj else find(obj, "blockHash")
        if block_hash is not None:
            private["block_hash"] = F.short_text(block_hash)
        task_input = obj["input"] if "input" in obj else find(obj, "input")
        if task_input is not None:
            private["input"] = F.short_text(task_input if type(task_input) is str else str(task_input))
        chain_id = obj["chainId"] if "chainId" in obj else find(obj, "chainId", "chain_id")
        if type(chain_id) is not int:
            chain_id = F.as_int(chain_id)
        block = obj["blockNumber"] if "blockNumber" in obj else find(obj, "blockNumber", "block_number")
        if type(block) is not int:
            block = F.as_int(block)
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
        if "-" in msg:  # (what the searches need, checked first: they cost more than these scans)
            m = F.UUID_RE.search(msg)
            if m is not None:
                return m.group(0)
        if "_" in msg:
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
        # (`v if type(v) is int else as_int(v)`: the usual ints without a call)
        elapsed = metrics.get("elapsed")
        if type(elapsed) is not int:
            elapsed = as_int(elapsed)
        if elapsed is not None and elapsed >= 0:
            ev.execution_time_ms = round(elapsed / 1_000_000)
        private = ev.private
        wasi = metrics.get("wasi")
        if type(wasi) is dict:
            code = wasi.get("exitCode")
            ev.exit_code = code if type(code) is int else as_int(code)
        metering = metrics.get("metering")
        if type(metering) is dict:
            last = metering.get("last")
            if type(last) is dict:
                steps = last.get("steps")
                ev.steps = steps if type(steps) is int else as_int(steps)
            peak = metering.get("peak")
            if type(peak) is dict:
                value = peak.get("memory")
                ev.memory_peak = value if type(value) is int else as_int(value)
                for key, name in (("call", "peak_call"), ("frame", "peak_frame")):
                    value = peak.get(key)
                    if type(value) is not int:
                        value = as_int(value)
                    if value is not None:
                        private[name] = value
            limits = metering.get("limits")
            if type(limits) is dict:
                for key, name in _LIMIT_NAMES:
                    value = limits.get(key)
                    if type(value) is not int:
                        value = as_int(value)
                    if value is not None:
                        private[name] = value
        execution = metrics.get("execution")
        if type(execution) is dict:
            prepare = execution.get("prepare")
            if type(prepare) is dict:
                ev.cached = F.as_bool(prepare.get("cached"))
            wasm = execution.get("wasm")
            if type(wasm) is dict:
                size = wasm.get("size")
                if type(size) is not int:
                    size = as_int(size)
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
        got = self._slot_memo.get(msg, _NOTHING)
        if got is _NOTHING:
            got = _slot_of(msg)
            if len(self._slot_memo) > 1024:
                self._slot_memo.clear()
            self._slot_memo[msg] = got
        if got is None:
            self._raw(at, level, msg, cont, out, "unknown")
            return
        self._stats.slot_usages += 1
        out.append(SlotUsage(at, *got))

    def _on_invoice(self, at, level, msg, cont, out) -> None:
        obj = self._json_after(msg, cont, msg.index("InvoiceSubscriber"))
        has_json = "{" in msg or (cont is not None and any("{" in c for c in cont))
        if obj is None and has_json:
            self._stats.invalid_json += 1
            self._raw(at, level, msg, cont, out, "invalid_json")
            return
        if obj is not None:
            find = F.find  # (top-level keys read directly, as `find` would first)
            exec_id = obj["executionId"] if "executionId" in obj else find(obj, "executionId")
            invoice_id = obj["invoiceId"] if "invoiceId" in obj else find(obj, "invoiceId")
            items = obj["lineItem"] if "lineItem" in obj else find(obj, "lineItem", "lineItems")
        else:
            exec_id = invoice_id = items = None
        if not isinstance(exec_id, str):
            m = F.UUID_RE.search(msg)
            exec_id = m.group(0) if m is not None else None
        if invoice_id is None:
            m = _INVOICE_ID_RE.search(msg)
            invoice_id = m.group(0) if m is not None else None
        if invoice_id is None and items is None:
            if cont is None and not has_json:  # depends on the text only: remembered (see `_entry`)
                if len(self._status_memo) > 256:
                    self._status_memo.clear()
                self._status_memo.add(msg)
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
            task_id = obj["taskId"] if "taskId" in obj else F.find(obj, "taskId")
            if isinstance(task_id, str):
                inv.private["task_id"] = F.short_text(task_id)
        self._stats.invoices += 1
        out.append(inv)


def _without_ansi(lines: list[str], text: str) -> list[str]:
    """`lines` (joined with newlines in `text`) with colour codes removed, scanning only the lines
    that have an escape character."""
    out = list(lines)
    i = 0  # index of the line that starts at offset `at` of `text`
    at = 0
    p = text.find("\x1b")
    while p >= 0:
        i += text.count("\n", at, p)
        out[i] = _ANSI_RE.sub("", out[i])
        end = text.find("\n", p)
        if end < 0:
            break
        at = end + 1
        i += 1
        p = text.find("\x1b", at)
    return out


def _slot_of(msg: str) -> tuple | None:
    """`(semaphore, action, active, capacity)` of a `Semaphore <name> ...` message, or None."""
    name = msg[10:].partition(" ")[0]
    i = msg.find("Using slot ", 10)
    m = _USING_RE.match(msg, i + 11) if i >= 0 else None
    if m is not None:
        return (name, "acquired", int(m.group(1)), int(m.group(2)))
    i = msg.find("Released slot (", 10)
    m = _USING_RE.match(msg, i + 15) if i >= 0 else None
    if m is not None:
        return (name, "released", int(m.group(1)), int(m.group(2)))
    return None


def parse_lines(lines: Iterable[str]) -> tuple[list, ParseStats]:
    """Parse a whole finite log (convenience for tools and tests): every record, and the counters."""
    parser = LogParser()
    records = list(parser.feed_all(lines))
    return records, parser.stats
