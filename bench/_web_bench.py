"""Helpers of the web benches: a real `monitor-agent run` (gunicorn) process, percentiles."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from seed.supervisor import Child

MONITOR_AGENT = str(Path(sys.executable).parent / "monitor-agent")
TOKEN = "bench-token-" + "x" * 20


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@contextmanager
def agent_process(port: int, data_dir: str | None = None, **env_extra: str):
    """`monitor-agent run` on 127.0.0.1:port (a seed.supervisor.Child), stopped with SIGTERM at the end."""
    data_dir = data_dir or tempfile.mkdtemp(prefix="bench-agent-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))}
    env.update(
        {"DATA_DIR": data_dir, "MONITOR_PORT": str(port), "NODE_LOG_SOURCE": "none", "LOG_LEVEL": "WARNING",
         "MONITOR_API_TOKEN": TOKEN, **env_extra}
    )  # fmt: skip
    with Child("monitor-agent", [MONITOR_AGENT, "run"], Path(data_dir) / "agent.log", env, append=False) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/api/ready", 60)
        yield proc
