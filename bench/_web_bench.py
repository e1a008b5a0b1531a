"""Helpers of the web benches: a real `monitor-agent run` (gunicorn) process, percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

MONITOR_AGENT = str(Path(sys.executable).parent / "monitor-agent")
TOKEN = "bench-token-" + "x" * 20


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@contextmanager
def agent_process(port: int, data_dir: str | None = None, **env_extra: str):
    """`monitor-agent run` on 127.0.0.1:port, stopped with SIGTERM (by pid) at the end."""
    data_dir = data_dir or tempfile.mkdtemp(prefix="bench-agent-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))}
    env.update(
        {"DATA_DIR": data_dir, "MONITOR_PORT": str(port), "NODE_LOG_SOURCE": "none", "LOG_LEVEL": "WARNING",
         "MONITOR_API_TOKEN": TOKEN, **env_extra}
    )  # fmt: skip
    log = open(Path(data_dir) / "agent.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([MONITOR_AGENT, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"monitor-agent exited: see {data_dir}/agent.log")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("monitor-agent did not become ready")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
