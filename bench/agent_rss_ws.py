"""RSS of `monitor-agent run` (one process since issue 15; before, gunicorn master + worker) idle,
federation on, 10 WebSocket clients.

A real nats-server on loopback is the seed; the WebSocket clients are in this process. RSS is
summed over the agent's whole process tree (psutil), sampled every second after a warm-up.
Target: <= 60 MB for all its processes together (issue 15; the older Node.js monitor's figure).

    /work/venv/bin/python bench/agent_rss_ws.py [--clients 10] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx
import psutil
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _federation_bench import free_port, nats_server  # noqa: E402
from _web_bench import agent_process  # noqa: E402


def tree_mem_mb(proc: psutil.Process) -> tuple[float, float, dict[int, float]]:
    """(sum of RSS, sum of PSS, RSS per pid). RSS counts pages a fork shares twice; PSS splits them."""
    procs = [proc, *proc.children(recursive=True)]
    per, pss = {}, 0.0
    for p in procs:
        info = p.memory_full_info()
        per[p.pid] = info.rss / 1e6
        pss += info.pss / 1e6
    return sum(per.values()), pss, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    port = free_port()
    with nats_server() as url, agent_process(port, ENABLE_FEDERATION="true", FEDERATION_SEED_URL=url) as proc:
        deadline = time.monotonic() + 20
        while httpx.get(f"http://127.0.0.1:{port}/api/federation/status").json()["state"] != "CONNECTED":
            if time.monotonic() > deadline:
                raise SystemExit("federation never connected")
            time.sleep(0.2)
        clients = [
            websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5) for _ in range(args.clients)
        ]
        for ws in clients:
            assert json.loads(ws.recv())["type"] == "hello"
        # Open each dashboard page once, as a browser would, then stay idle.
        for path in ("/", "/network", "/settings", "/privacy", "/api/federation/tasks/global", "/metrics"):
            httpx.get(f"http://127.0.0.1:{port}{path}")
        time.sleep(3)
        ps = psutil.Process(proc.pid)
        samples, pss_samples, per = [], [], {}
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            total, pss, per = tree_mem_mb(ps)
            samples.append(total)
            pss_samples.append(pss)
            time.sleep(1)
        clients_seen = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        open_ws = next(
            line.split()[-1]
            for line in clients_seen.splitlines()
            if line.startswith("monitor_agent_websocket_clients ")
        )
        for ws in clients:
            ws.close()
    samples.sort()
    pss_samples.sort()
    print(f"processes: {len(per)} ({', '.join(f'{pid}: {mb:.1f} MB' for pid, mb in per.items())})")
    print(f"WebSocket clients open during sampling: {open_ws}")
    print(
        f"RSS total over {len(samples)} samples: median {samples[len(samples) // 2]:.1f} MB, max {samples[-1]:.1f} MB"
    )
    print(f"PSS total (pages shared between processes split): max {pss_samples[-1]:.1f} MB")
    print("target <= 60 MB (RSS summed):", "met" if samples[-1] <= 60 else "NOT met")


if __name__ == "__main__":
    main()
