"""API latency of a real `monitor-agent run` while slow clients hold connections open (slowloris).

Two phases in the same run, same agent process: baseline (nothing else connected), then with
`--slow` connections that each sent only part of a request's headers and trickle one more
header byte every few seconds; a connection the server drops is replaced at once, so
`--slow` are held open the whole time (as an attacker would). In each phase one keep-alive
client sends `--requests` GETs of `--path` one after the other; a request that gets no answer
within 2 s counts as a timeout (after 20 timeouts without a single answer the phase stops). Prints p50/p99 of both phases and the ratio, as JSON.

    .venv/bin/python bench/slow_clients.py [--slow 200] [--requests 2000] [--path /api/federation/status]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _federation_bench import free_port  # noqa: E402
from _web_bench import agent_process, pct  # noqa: E402


class SlowClients:
    """Keep `n` connections open, each inside an unfinished request head."""

    def __init__(self, port: int, n: int, trickle_s: float = 3.0):
        self.port, self.n, self.trickle_s = port, n, trickle_s
        self.socks: list[socket.socket] = []
        self.opened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        s.setblocking(False)
        self.opened += 1
        return s

    def start(self) -> None:
        self.socks = [self._open() for _ in range(self.n)]
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.trickle_s):
            for i, s in enumerate(self.socks):
                try:
                    if s.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass  # still open, nothing from the server: trickle on
                except OSError:
                    s.close()
                    self.socks[i] = self._open()
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    s.close()
                    self.socks[i] = self._open()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def measure(base: str, path: str, n: int) -> dict:
    times: list[float] = []
    timeouts = 0
    with httpx.Client(base_url=base, timeout=2, trust_env=False) as client:
        for i in range(50 + n):  # the first 50: warm-up, not counted
            if i == 50:
                times.clear()
            t0 = time.perf_counter()
            try:
                r = client.get(path)
                r.raise_for_status()
            except httpx.TimeoutException:
                timeouts += 1
                if timeouts >= 20 and not times:
                    break  # the server answers nobody: no point waiting 2 s per request
                continue
            times.append((time.perf_counter() - t0) * 1000)
    if not times:
        return {"requests": n, "answered": 0, "timeouts": timeouts}
    return {
        "requests": n,
        "answered": len(times),
        "timeouts": timeouts,
        "p50_ms": round(pct(times, 50), 2),
        "p99_ms": round(pct(times, 99), 2),
        "max_ms": round(max(times), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--path", default="/api/federation/status")
    args = ap.parse_args()
    port = free_port()
    with agent_process(port):
        base = f"http://127.0.0.1:{port}"
        baseline = measure(base, args.path, args.requests)
        slow = SlowClients(port, args.slow)
        slow.start()
        time.sleep(1.0)
        try:
            attacked = measure(base, args.path, args.requests)
            held = sum(1 for s in slow.socks if s.fileno() >= 0)
        finally:
            slow.close()
    out = {
        "path": args.path,
        "slow_connections_held": held,
        "slow_connections_opened": slow.opened,
        "baseline": baseline,
        "with_slow_clients": attacked,
    }
    if "p99_ms" in baseline and "p99_ms" in attacked:
        out["ratio_p50"] = round(attacked["p50_ms"] / baseline["p50_ms"], 2)
        out["ratio_p99"] = round(attacked["p99_ms"] / baseline["p99_ms"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
