"""Publish -> stored-at-peer latency at a steady aggregate rate (default 500 msgs/s).

Receivers allow one node 50 task events/s (PROTOCOL.md §4), so the load comes from ten real
publishing Agents at 50/s each; one receiving Agent stores them. Latency = from
`submit_task_event` on the publisher to the `federation_task` event the receiver emits after
its batch writer committed the row. All agents are in-process, on one real nats-server.

    /work/venv/bin/python bench/publish_latency.py [--rate 500] [--seconds 10] [--publishers 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import median, nats_server, pct  # noqa: E402

from monitor_agent.agent import Agent  # noqa: E402
from monitor_agent.config import load_config  # noqa: E402
from monitor_agent.model import TaskEvent  # noqa: E402


def make_agent(url: str, **extra: str) -> Agent:
    env = {
        "DATA_DIR": tempfile.mkdtemp(prefix="bench-lat-"),
        "NODE_LOG_SOURCE": "none",
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": url,
        "FEDERATION_BROADCAST_STATS": "false",
        **extra,
    }
    agent = Agent(load_config(env))
    agent.start()
    return agent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--publishers", type=int, default=10)
    args = ap.parse_args()
    with nats_server() as url:
        receiver = make_agent(url, FEDERATION_BROADCAST_TASKS="false")
        publishers = [make_agent(url, FEDERATION_RECEIVE_ENABLED="false") for _ in range(args.publishers)]
        agents = [receiver, *publishers]
        try:
            while not all(a.status()["connected"] for a in agents):
                time.sleep(0.02)
            sent: dict[str, float] = {}
            latencies: list[float] = []
            sub = receiver.bus.subscribe(maxsize=1_000_000)
            done = threading.Event()

            def collect() -> None:
                while not done.is_set():
                    event = sub.get(0.1)
                    if event and event["type"] == "federation_task":
                        t0 = sent.get(event["data"]["taskId"])
                        if t0 is not None:
                            latencies.append(time.perf_counter() - t0)

            collector = threading.Thread(target=collect)
            collector.start()
            total = int(args.rate * args.seconds)
            interval = 1 / args.rate
            start = time.perf_counter()
            for i in range(total):
                target = start + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                agent = publishers[i % len(publishers)]
                eid = f"bench-{i}"
                sent[agent.identity.task_id(eid)] = time.perf_counter()
                agent.submit_task_event(
                    TaskEvent("received", eid, datetime.now(UTC), chain_id=1, task_type="wasm")
                )
            achieved = total / (time.perf_counter() - start)
            deadline = time.monotonic() + 30
            while len(latencies) < total and time.monotonic() < deadline:
                time.sleep(0.05)
            done.set()
            collector.join()
            ms = [x * 1000 for x in latencies]
            print(
                f"{len(ms)}/{total} stored at the peer; offered {achieved:,.0f} msgs/s from {len(publishers)} nodes"
            )
            print(
                f"publish -> stored-at-peer latency: p50 {median(ms):.2f} ms  p90 {pct(ms, 90):.2f} ms  "
                f"p99 {pct(ms, 99):.2f} ms  max {max(ms):.2f} ms   (targets p50 <= 5 ms, p99 <= 50 ms)"
            )
            drops = receiver.federation.counters()["drops"]
            if drops:
                print(f"receiver drops: {drops}")
        finally:
            for agent in agents:
                agent.stop()


if __name__ == "__main__":
    main()
