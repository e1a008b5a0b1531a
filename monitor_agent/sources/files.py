"""The node's debug log folder as a source: history once in date order, then follow the current file.

Files are `*.log` and rotated `*.log.gz` with a `YYYY-MM-DD` in the name. A cursor
`{"file", "ino", "offset"}` (offset in uncompressed bytes, always at an entry boundary) is saved
in the store after each batch, so a restart neither re-reads history nor misses what was written
while the agent was stopped — also when the file it stopped in was rotated to `.gz` meanwhile.
Rotation (a newer file appears) and truncation (the file shrinks, or is replaced) are followed.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..interfaces import AgentLike
from ..logs import LogParser
from .sink import RecordSink

log = logging.getLogger("monitor_agent.sources.files")

CHUNK = 256 * 1024
MAX_PARTIAL = 1024 * 1024  # a "line" longer than this without a newline is cut
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class LogFile:
    """One file of the folder; `logical` is its name without `.gz` (the cursor's identity)."""

    path: Path
    logical: str

    @property
    def compressed(self) -> bool:
        return self.path.name.endswith(".gz")

    @property
    def sort_key(self) -> tuple:
        m = _DATE_RE.search(self.logical)
        # Undated names sort after dated ones: they are the live file of some loggers.
        return (m.group(0) if m else "9999-99-99", self.logical)


def list_log_files(folder: Path) -> list[LogFile]:
    """The folder's log files in reading order (a plain file wins over its `.gz` twin)."""
    found: dict[str, LogFile] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        if name.endswith(".log"):
            found[name] = LogFile(folder / name, name)
        elif name.endswith(".log.gz"):
            logical = name[:-3]
            if logical not in found:
                found[logical] = LogFile(folder / name, logical)
    return sorted(found.values(), key=lambda f: f.sort_key)


def split_batch(data: bytes) -> list[str]:
    """Complete lines (`data` ends with a newline) as text, without their newlines."""
    return data[:-1].decode("utf-8", "replace").split("\n")


def offset_of_line(data: bytes, index: int, count: int) -> int:
    """Byte offset in `data` of line `index` of its `count` newline-terminated lines."""
    if index <= count // 2:
        off = 0
        for _ in range(index):
            off = data.index(b"\n", off) + 1
        return off
    off = len(data) - 1  # the final newline
    for _ in range(count - index):
        off = data.rindex(b"\n", 0, off)
    return off + 1


class Reader:
    """Feeds one stream of bytes to a parser and tracks the entry-boundary offset to resume at."""

    def __init__(self, parser: LogParser, offset: int):
        self.parser = parser
        self.partial = b""
        self.consumed = offset  # stream offset just after the last complete line fed
        self.resume = offset  # where a restart must begin (first line of the open entry)
        self.lines = 0

    def feed(self, data: bytes) -> list:
        buf = self.partial + data if self.partial else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) > MAX_PARTIAL:  # no newline in sight: cut it into a line of its own
                buf += b"\n"
                cut = len(buf)
            else:
                self.partial = buf
                return []
        batch, self.partial = buf[:cut], buf[cut:]
        lines = split_batch(batch)
        records = self.parser.feed_lines(lines)
        self.lines += len(lines)
        start = self.consumed
        self.consumed += cut
        pos = self.parser.resume_pos
        if pos is None:
            self.resume = self.consumed
        elif pos >= 0:
            self.resume = start + offset_of_line(batch, pos, len(lines))
        return records

    def finish(self) -> list:
        """End of this stream: the unterminated last line counts, and the open entry closes."""
        records = self.feed(b"\n") if self.partial else []
        records = list(records) + list(self.parser.flush())
        self.resume = self.consumed
        return records

    def flush(self) -> list:
        """The node went quiet: close the open entry (a partial line stays pending)."""
        records = list(self.parser.flush())
        self.resume = self.consumed
        return records


class FileSource:
    """Reads and follows a TrueBit node's debug log folder (NODE_LOG_SOURCE=files)."""

    name = "files"

    def __init__(
        self,
        agent: AgentLike,
        folder: Path | str,
        *,
        poll_interval: float = 0.25,
        idle_flush: float = 0.5,
        rescan_interval: float = 1.0,
        cursor_key: str | None = None,
    ):
        self.agent = agent
        self.folder = Path(folder)
        self.poll_interval = poll_interval
        self.idle_flush = idle_flush
        self.rescan_interval = rescan_interval
        self.cursor_key = cursor_key or f"files:{self.folder.resolve()}"
        self.sink = RecordSink(agent)
        self.parser = LogParser()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: str | None = None
        self.files_read = 0
        self.errors = 0

    # ---- lifecycle ----

    def start(self) -> None:
        if not self.folder.is_dir():
            log.warning("node log folder %s does not exist (yet): waiting for it", self.folder)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="source-files", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "folder": str(self.folder),
            "file": self.current,
            "filesRead": self.files_read,
            "parser": self.parser.stats.as_dict(),
            **self.sink.snapshot(),
        }

    # ---- the reading thread ----

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except StoreError as exc:
                # The database refused a write: nothing past the saved cursor is lost; read it again.
                self.errors += 1
                log.error("node logs: %s; retrying from the saved position", exc)
            except Exception:
                self.errors += 1
                log.exception("node logs: reader failed; restarting from the saved position")
            self.parser = LogParser()
            self._stop.wait(2.0)

    def _save(self, f: LogFile, ino: int | None, offset: int) -> None:
        self.agent.store.set_cursor(self.cursor_key, {"file": f.logical, "ino": ino, "offset": offset})

    def _start_point(self, files: list[LogFile]) -> tuple[int, int]:
        """(index in `files`, offset) where reading begins, from the saved cursor."""
        cursor = self.agent.store.get_cursor(self.cursor_key)
        if not cursor or not isinstance(cursor.get("file"), str):
            return 0, 0
        name, offset = cursor["file"], int(cursor.get("offset") or 0)
        for i, f in enumerate(files):
            if f.logical == name:
                if not f.compressed:
                    try:
                        st = f.path.stat()
                    except OSError:
                        return i, 0
                    if (cursor.get("ino") not in (None, st.st_ino)) or st.st_size < offset:
                        return i, 0  # replaced or truncated since: read it from the start
                return i, offset
        # The file is gone: continue with the first one after it.
        key = LogFile(Path(name), name).sort_key
        for i, f in enumerate(files):
            if f.sort_key > key:
                return i, 0
        return len(files), 0

    def _follow(self) -> None:
        files = list_log_files(self.folder)
        while not files and not self._stop.is_set():
            self._stop.wait(self.rescan_interval)
            files = list_log_files(self.folder)
        if self._stop.is_set():
            return
        index, offset = self._start_point(files)
        if index < len(files) - 1:
            history = len(files) - 1 - index
            log.info(
                "node logs: reading %d file%s in %s (%d rotated, then following %s)",
                history + 1, "s" * (history + 1 != 1), self.folder, history, files[-1].path.name,
            )  # fmt: skip
        # History: every file but the newest, read to its end.
        while index < len(files) - 1 and not self._stop.is_set():
            self._read_whole(files[index], offset)
            index, offset = index + 1, 0
        if self._stop.is_set():
            return
        if index >= len(files):  # the saved file is gone and nothing newer exists yet
            index, offset = len(files) - 1, 0
        self._tail(files[index], offset)

    def _read_whole(self, f: LogFile, offset: int) -> None:
        """Read a finished (rotated) file from `offset` to its end; the cursor then points past it."""
        self.current = f.logical
        reader = Reader(self.parser, offset)
        try:
            opener = gzip.open if f.compressed else open
            with opener(f.path, "rb") as fh:
                if offset:
                    fh.seek(offset)  # gzip: decompresses up to there, which is what we need
                while not self._stop.is_set():
                    data = fh.read(CHUNK)
                    if not data:
                        break
                    self.sink.deliver(reader.feed(data))
                    self._save(f, None, reader.resume)
        except (OSError, EOFError, zlib.error) as exc:
            # A damaged archive: keep what was read, say so, go on with the next file.
            log.warning("node logs: %s is damaged after %d bytes: %s", f.path.name, reader.consumed, exc)
        if self._stop.is_set():
            return
        self.sink.deliver(reader.finish())
        self.files_read += 1

    def _tail(self, f: LogFile, offset: int) -> None:
        """Follow the newest file; switch to a newer one when it appears; survive truncation."""
        while not self._stop.is_set():
            nxt = self._tail_one(f, offset)
            if nxt is None:
                return
            f, offset = nxt, 0

    def _tail_one(self, f: LogFile, offset: int) -> LogFile | None:
        self.current = f.logical
        if f.compressed:  # only an archive is left of the file we were in
            self._read_whole(f, offset)
            return self._wait_newer(f)
        try:
            fh = open(f.path, "rb")  # noqa: SIM115 - held across the loop below
        except FileNotFoundError:
            return self._wait_newer(f)
        with fh:
            ino = os.fstat(fh.fileno()).st_ino
            fh.seek(offset)
            reader = Reader(self.parser, offset)
            self._save(f, ino, reader.resume)
            last_data = time.monotonic()
            last_scan = 0.0
            while not self._stop.is_set():
                data = fh.read(CHUNK)
                if data:
                    self.sink.deliver(reader.feed(data))
                    self._save(f, ino, reader.resume)
                    last_data = time.monotonic()
                    continue
                now = time.monotonic()
                if self.parser.pending and now - last_data >= self.idle_flush:
                    self.sink.deliver(reader.flush())
                    self._save(f, ino, reader.resume)
                if now - last_scan >= self.rescan_interval:
                    last_scan = now
                    change = self._check(f, ino, fh, reader)
                    if change == "truncated":
                        log.info("node logs: %s was truncated; reading it from the start", f.path.name)
                        self.sink.deliver(reader.finish())
                        fh.seek(0)
                        reader = Reader(self.parser, 0)
                        self._save(f, ino, 0)
                        continue
                    if change is not None:
                        # Rotated: drain what is left of this file, then go on with the next one.
                        while data := fh.read(CHUNK):
                            self.sink.deliver(reader.feed(data))
                        self.sink.deliver(reader.finish())
                        self.files_read += 1
                        if isinstance(change, LogFile):
                            log.info("node logs: %s rotated; following %s", f.logical, change.logical)
                            return change
                        log.info("node logs: %s was replaced; reading the new file", f.logical)
                        return f  # same name, new file
                self._stop.wait(self.poll_interval)
            self._save(f, ino, reader.resume)
        return None

    def _check(self, f: LogFile, ino: int, fh: Any, reader: Reader) -> Any:
        """None (no change), "truncated", a newer LogFile, or "replaced"."""
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino == ino and st.st_size < reader.consumed + len(reader.partial):
            return "truncated"
        newer = [g for g in list_log_files(self.folder) if g.sort_key > f.sort_key]
        if newer:
            return newer[0]
        if st is not None and st.st_ino != ino:
            return "replaced"
        return None

    def _wait_newer(self, f: LogFile) -> LogFile | None:
        while not self._stop.is_set():
            for g in list_log_files(self.folder):
                if g.sort_key > f.sort_key or (g.logical == f.logical and not g.compressed):
                    return g
            self._stop.wait(self.rescan_interval)
        return None
