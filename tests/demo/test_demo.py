"""`seedctl demo` as a user runs it: one command, URLs printed, a task crosses the federation,
Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.plugins.tools import http_get

SEEDCTL = [str(Path(sys.executable).parent / "seedctl")]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "SEEDCTL_"))}
    env.pop("ENABLE_FEDERATION", None)
    env.pop("DATA_DIR", None)
    env.update(extra)
    return env


class Output:
    """Lines of a child's stdout, readable with a timeout."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _new_lines(self, timeout: float):
        """Lines as they arrive (each kept in `lines`) until `timeout` passes or the stream ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            yield line

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        for line in self.lines:
            if m := rx.search(line):
                return m
        for line in self._new_lines(timeout):
            if m := rx.search(line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))

    def rest(self, timeout: float = 5.0) -> str:
        for _ in self._new_lines(timeout):
            pass
        return "\n".join(self.lines)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_demo_runs_a_federation_and_ctrl_c_leaves_nothing(nats_server_bin):
    proc = subprocess.Popen(
        [*SEEDCTL, "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_clean_env(),
        start_new_session=True,
    )
    out = Output(proc.stdout)
    descendants: list[int] = []
    try:
        state = Path(out.wait_for(r"state in (\S+)\)", 20).group(1))
        for step in ("seed", "console", "agent A", "agent B"):
            out.wait_for(rf"\[\d/5\] {step}\s", 90)
        console = out.wait_for(r"Console\s+(http://127\.0\.0\.1:\d+)\s+password: (\S+)", 60)
        agent_a = out.wait_for(r"Agent A\s+(http://127\.0\.0\.1:\d+)", 5).group(1)
        agent_b = out.wait_for(r"Agent B\s+(http://127\.0\.0\.1:\d+)", 5).group(1)
        out.wait_for(r"Press Ctrl-C", 5)
        descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(descendants) >= 4  # nats-server, console, two agents (and their workers), replayer

        # The printed URLs are live: both dashboards and the console login page.
        assert http_get(agent_a + "/", timeout=5).status_code == 200
        assert http_get(agent_b + "/", timeout=5).status_code == 200
        assert http_get(console.group(1) + "/", timeout=5, follow_redirects=True).status_code == 200
        assert len(console.group(2)) >= 24  # a fresh, generated password

        # A's replayed tasks reach B through the seed, attributed to A's (anonymous) node id.
        a_status = http_get(agent_a + "/api/federation/status", timeout=5).json()
        b_status = http_get(agent_b + "/api/federation/status", timeout=5).json()
        assert a_status["connected"] and b_status["connected"]
        deadline = time.monotonic() + 60
        tasks: list[dict] = []
        while time.monotonic() < deadline and not tasks:
            body = http_get(agent_b + "/api/federation/tasks/global", params={"limit": 50}, timeout=5).json()
            tasks = [t for t in body["tasks"] if t["sourceNode"] == a_status["nodeId"]]
            time.sleep(0.3)
        assert tasks, "no task from agent A reached agent B"
        assert re.fullmatch(r"global-task-[0-9a-f]{12}", tasks[0]["taskId"])
        assert "0x" not in str(tasks)  # the sample log's wallet and hashes never cross
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in descendants:
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise
    text = out.rest()
    assert code == 0, text
    assert "nothing left running" in text
    survivors = [pid for pid in descendants if _alive(pid)]
    assert survivors == [], f"still running after Ctrl-C: {survivors}"
    assert not state.exists(), "the temp state dir must be removed"


def test_demo_rejects_a_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    r = subprocess.run(
        [*SEEDCTL, "demo", "--data-dir", str(path)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "--data-dir" in r.stderr and "Traceback" not in r.stderr
