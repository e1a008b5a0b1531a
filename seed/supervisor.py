"""One way to run and stop a child process: seedctl's nats-servers, the demo, tests and benches.

`Child` starts a command in its own process group (a terminal's ^C reaches only the parent)
with stdout and stderr appended to a log file; `wait_ready` polls a probe (or `wait_http` a URL)
and fails at once, quoting the log, if the child exits first; `stop` sends SIGTERM to the whole
group and SIGKILL after a timeout (whatever the child started included). `stop_pid` does the
same for a process known only by its pid (`seedctl down` from another shell).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

from .monitoring import http_get

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


class ChildError(Exception):
    """A child exited at start or never became ready; the message names it and quotes its log."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if its parent dies (even by SIGKILL): nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One supervised child process (see the module doc).

    `env`: the child's whole environment (None: this process's). `die_with_parent`: end with
    the parent (the demo's agents; not a seed, which outlives `seedctl up`). `nofile`: a hard
    limit on open files in the child. `append`: keep the log's earlier runs.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        die_with_parent: bool = True,
        nofile: int | None = None,
        append: bool = True,
    ):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.die_with_parent = die_with_parent
        self.nofile = nofile
        self.append = append
        self.popen: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"Child({self.name!r}, pid={self.pid})"

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        needs_hook = self.nofile or (self.die_with_parent and sys.platform.startswith("linux"))
        with open(self.log_path, "ab" if self.append else "wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._in_child if needs_hook else None,  # noqa: PLW1509
                close_fds=True,
            )
        return self

    def _in_child(self) -> None:  # pragma: no cover - runs in the child between fork and exec
        if self.die_with_parent and sys.platform.startswith("linux"):
            _die_with_parent()
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def __enter__(self) -> Child:
        return self if self.popen is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def pids(self) -> list[int]:
        """The process and all its descendants (whatever it started)."""
        if self.popen is None or not self.alive():
            return []
        try:
            root = psutil.Process(self.popen.pid)
            return [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(ln.strip() for ln in self.output().strip().splitlines()[-lines:])

    # ---- ready ----

    def wait_ready(self, probe: Callable[[], T | None], timeout: float, what: str = "", interval: float = 0.1) -> T:
        """Call `probe` until it returns something truthy (returned); ChildError if the child exits
        first or `timeout` passes (`what` describes what was awaited)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ChildError(
                    f"{self.name} exited at start: {self.log_tail() or 'no output'} (log {self.log_path})"
                )
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise ChildError(
                    f"{self.name}: {what or 'not ready'} in {timeout:.0f}s; log: {self.log_tail() or 'empty'}"
                )
            time.sleep(interval)

    def wait_http(self, url: str, timeout: float) -> httpx.Response:
        """Poll `url` until it answers 200 (returned)."""
        last = ["no answer"]

        def probe() -> httpx.Response | None:
            try:
                r = http_get(url, timeout=2.0, trust_env=False)
            except httpx.HTTPError as exc:
                last[0] = type(exc).__name__
                return None
            if r.status_code == 200:
                return r
            last[0] = f"HTTP {r.status_code}"
            return None

        try:
            return self.wait_ready(probe, timeout, f"no answer from {url}")
        except ChildError as exc:
            if self.alive():  # say what the URL last answered
                raise ChildError(
                    f"{self.name}: no answer from {url} in {timeout:.0f}s ({last[0]}); log: {self.log_tail()}"
                ) from None
            raise exc from None

    # ---- stop ----

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> str:
        """SIGTERM to the whole group, SIGKILL after `timeout`; returns how it ended."""
        if self.popen is None:
            return "not started"
        if self.popen.poll() is not None:
            self.signal_group(signal.SIGKILL)  # stray descendants of a dead leader
            return f"had exited ({self.popen.returncode})"
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
            how = "stopped"
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(5)
            how = "killed after timeout"
        self.signal_group(signal.SIGKILL)  # anything left in its process group
        return how

    def kill(self) -> None:
        """kill -9 the whole group, at once (a crash, for fault tests)."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)


def wait_gone(pid: int, timeout: float, alive: Callable[[int], bool]) -> bool:
    """Wait until `alive(pid)` is false; True if it is gone within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def stop_pid(pid: int, timeout: float, alive: Callable[[int], bool]) -> str:
    """SIGTERM `pid`, then SIGKILL if it lingers past `timeout`; returns how it ended."""
    for sig, how in ((signal.SIGTERM, "terminated"), (signal.SIGKILL, "killed")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, timeout, alive):
            return how
    return "still running"
