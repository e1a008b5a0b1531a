"""Shared bench helpers: a real nats-server on loopback, signed messages, a raw nats-py client thread."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import nats

from seed.supervisor import Child

NATS_SERVER = str(Path(sys.executable).parent / "nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def nats_server(max_payload: int = 8192):
    """A real nats-server on 127.0.0.1 (no auth: the bench measures the agent, not the seed's auth)."""
    port = free_port()
    conf = Path(tempfile.mkdtemp()) / "bench.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\nmax_payload: {max_payload}\nmax_pending: 67108864\n")
    with Child("nats-server", [NATS_SERVER, "-c", str(conf)], conf.with_suffix(".log")) as proc:
        proc.wait_ready(lambda: _accepts(port), 5, f"no listener on port {port}", interval=0.02)
        yield f"nats://127.0.0.1:{port}"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def now_ts() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_task(identity, n: int) -> tuple[str, bytes, dict[str, str]]:
    msg = {
        "v": 1,
        "event": "task_completed",
        "nodeId": identity.node_id,
        "taskId": f"global-task-{n:012x}",
        "chainId": 1,
        "blockNumber": 18950234 + n,
        "taskType": "wasm",
        "status": "completed",
        "executionTimeMs": 245,
        "timestamp": now_ts(),
    }
    payload = json.dumps(msg, separators=(",", ":")).encode()
    return f"tbfed.v1.task.{identity.node_id}", payload, identity.headers(payload)


class LoopThread:
    """An asyncio loop in a thread, for raw nats-py clients driven from synchronous bench code."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def connect(url: str):
    return await nats.connect(url, allow_reconnect=False, pending_size=64 * 1024 * 1024)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)
