"""`seedctl demo`'s stand-in node: replays a sample runner-node log into a file, forever.

Entries keep the sample's pacing (gaps capped, scaled by `speed`), get the current time, and
every loop gets fresh execution ids and task ids, so a follower sees new tasks all the time.
Agent A of `seedctl demo` follows that file (a node that keeps producing tasks). Demo only: it
lives with the demo, and the agent package neither ships nor needs it.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

_HEADER_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TASK_ID = re.compile(r"\b([a-z]{1,8})_([0-9a-f]{64})\b")


def sample_log_path() -> Path:
    """The sample log bundled with the demo (a few minutes of a busy node)."""
    return Path(str(resources.files("seed") / "data" / "sample-node.log"))


def sample_entries(text: str) -> list[tuple[datetime | None, str]]:
    """The sample's entries: (time of the header, full text with continuation lines)."""
    entries: list[tuple[datetime | None, str]] = []
    for line in text.splitlines(keepends=True):
        m = _HEADER_TS.match(line)
        if m is not None:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            entries.append((at, line))
        elif entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + line)
    return entries


def fresh_ids(text: str, mapping: dict[str, str]) -> str:
    """`text` with each execution id and task hash replaced consistently by a new random one."""

    def new_uuid(m: re.Match) -> str:
        return mapping.setdefault(m.group(0), str(uuid.uuid4()))

    def new_task(m: re.Match) -> str:
        key = m.group(0)
        if key not in mapping:
            mapping[key] = f"{m.group(1)}_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        return mapping[key]

    return _TASK_ID.sub(new_task, _UUID.sub(new_uuid, text))


class LogReplayer:
    """Writes the sample log into `target` with realistic timing until stopped."""

    name = "replay"

    def __init__(self, target: Path | str, sample: Path | str | None = None, *, speed: float = 1.0,
                 max_gap: float = 4.0, loop_pause: float = 2.0):  # fmt: skip
        self.target = Path(target)
        self.sample = Path(sample) if sample else sample_log_path()
        self.speed = max(speed, 0.01)
        self.max_gap = max_gap
        self.loop_pause = loop_pause
        self.loops = 0
        self.entries_written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="replay-node-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        entries = sample_entries(self.sample.read_text(encoding="utf-8"))
        if not entries:
            return
        while not self._stop.is_set():
            mapping: dict[str, str] = {}
            prev: datetime | None = None
            for at, text in entries:
                if prev is not None and at is not None:
                    gap = min(max((at - prev).total_seconds(), 0.0), self.max_gap) / self.speed
                    if gap and self._stop.wait(gap):
                        return
                prev = at or prev
                now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
                line = _HEADER_TS.sub(now, fresh_ids(text, mapping), count=1)
                with open(self.target, "a", encoding="utf-8") as fh:
                    fh.write(line)
                self.entries_written += 1
            self.loops += 1
            if self._stop.wait(self.loop_pause / self.speed):
                return
