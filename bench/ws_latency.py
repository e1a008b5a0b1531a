"""Publish at agent A -> WebSocket frame at a client of agent B, at 200 messages/s.

A real nats-server is the seed. Agent B is a real `monitor-agent run`; this process
holds a WebSocket client on B's /ws. A separate publisher process runs five real agents (the
protocol caps one node at 50 task events/s, so 5 x 40/s = 200/s) and calls
`submit_task_event` on a fixed schedule, recording the monotonic time of each call; the client
records when the matching `federation_task` frame arrives (CLOCK_MONOTONIC is shared by the
processes of one host). The path measured: A's store write, anonymize, sign, publish, seed,
B's receive pipeline, B's batch writer, B's event bus, the WebSocket send.
Targets: p50 <= 10 ms, p99 <= 100 ms.

    /work/venv/bin/python bench/ws_latency.py [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import free_port, nats_server  # noqa: E402
from _web_bench import agent_process, pct  # noqa: E402

BLOCK_BASE = 30_000_000  # blockNumber = BLOCK_BASE + sequence number: the correlation key


def publishers_main(url: str, rate: float, seconds: float, agents: int) -> None:
    """Child process: `agents` real agents publishing `rate` task events per second in total."""
    from monitor_agent.agent import Agent
    from monitor_agent.config import load_config
    from monitor_agent.model import TaskEvent

    running = []
    for _ in range(agents):
        env = {"DATA_DIR": tempfile.mkdtemp(prefix="bench-pub-"), "NODE_LOG_SOURCE": "none",
               "ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": url, "FEDERATION_BROADCAST_STATS": "false",
               "FEDERATION_RECEIVE_ENABLED": "false", "LOG_LEVEL": "WARNING"}  # fmt: skip
        agent = Agent(load_config(env))
        agent.start()
        running.append(agent)
    deadline = time.monotonic() + 20
    while any(a.status()["state"] != "CONNECTED" for a in running):
        if time.monotonic() > deadline:
            raise SystemExit("publishers never connected")
        time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's client is listening now
    sent: dict[int, float] = {}
    interval = 1.0 / rate
    start = time.monotonic()
    total = int(rate * seconds)
    for seq in range(total):
        due = start + seq * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ev = TaskEvent(kind="received", execution_id=f"bench-{seq}", at=datetime.now(UTC), chain_id=1,
                       block_number=BLOCK_BASE + seq, task_type="wasm")  # fmt: skip
        sent[seq] = time.monotonic()
        running[seq % agents].submit_task_event(ev)
    time.sleep(2)  # let the last ones through before the agents say goodbye
    print(json.dumps(sent), flush=True)
    for agent in running:
        agent.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--publish", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publish:
        publishers_main(args.publish, args.rate, args.seconds, args.agents)
        return
    port = free_port()
    with nats_server() as url, agent_process(port, ENABLE_FEDERATION="true", FEDERATION_SEED_URL=url) as proc:
        while httpx.get(f"http://127.0.0.1:{port}/api/federation/status").json()["state"] != "CONNECTED":
            time.sleep(0.1)
        pub = subprocess.Popen(
            [sys.executable, __file__, "--publish", url, "--rate", str(args.rate), "--seconds", str(args.seconds),
             "--agents", str(args.agents)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert pub.stdout.readline().strip() == "ready"
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=30)
            assert json.loads(ws.recv())["type"] == "hello"
            arrived: dict[int, float] = {}
            stop = threading.Event()

            def read() -> None:
                while not stop.is_set():
                    try:
                        frame = ws.recv()
                    except Exception:
                        return
                    t = time.monotonic()
                    if not frame:  # the close frame
                        return
                    msg = json.loads(frame)
                    if (
                        msg["type"] == "federation_task"
                        and (msg["data"].get("blockNumber") or 0) >= BLOCK_BASE
                    ):
                        arrived[msg["data"]["blockNumber"] - BLOCK_BASE] = t

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            cpu_before = _tree_cpu_s(proc.pid)
            pub.stdin.write("go\n")
            pub.stdin.flush()
            sent = {int(k): v for k, v in json.loads(pub.stdout.readline()).items()}
            cpu_b = _tree_cpu_s(proc.pid) - cpu_before
            stop.set()
            ws.close()
        finally:
            pub.wait(30)
    lat = [(arrived[s] - t0) * 1000 for s, t0 in sent.items() if s in arrived]
    print(
        f"{len(sent)} task events at {args.rate:.0f}/s from {args.agents} agents; {len(lat)} reached the client"
    )
    print(f"  latency p50 {pct(lat, 50):.1f} ms, p90 {pct(lat, 90):.1f} ms, p99 {pct(lat, 99):.1f} ms,"
          f" max {max(lat):.1f} ms")  # fmt: skip
    # CPU time does not wait for a loaded machine's scheduler: B's cost per event, comparable across runs.
    print(f"  agent B CPU (user+sys, all its processes): {cpu_b:.2f} s, {cpu_b / max(1, len(sent)) * 1e6:.0f} us/event")
    print(
        "  targets p50 <= 10 ms, p99 <= 100 ms:",
        "met" if pct(lat, 50) <= 10 and pct(lat, 99) <= 100 else "NOT met",
    )


def _tree_cpu_s(pid: int) -> float:
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


if __name__ == "__main__":
    main()
