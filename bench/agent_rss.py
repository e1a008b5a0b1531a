"""Agent memory: RSS of a real agent process, federation on, idle, with 100 simulated peers.

The agent runs as its own process (Agent + its web app on werkzeug when the web package is
importable) connected to a real nats-server; this script plays 100 peers, each a signed
identity sending node_online and then a heartbeat every 5 s (the receivers' presence limit),
and samples the agent's RSS with psutil. Target: <= 60 MB (the original monitor's figure).

    /work/venv/bin/python bench/agent_rss.py [--peers 100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import LoopThread, connect, free_port, median, nats_server, now_ts  # noqa: E402

from monitor_agent.identity import load_identity  # noqa: E402

AGENT = textwrap.dedent(
    """
    import signal, sys, threading
    from monitor_agent.agent import Agent
    from monitor_agent.config import load_config
    agent = Agent(load_config())
    agent.start()
    web = "none"
    try:
        from monitor_agent.web import create_app
        from werkzeug.serving import make_server
        server = make_server("127.0.0.1", agent.config.monitor_port, create_app(agent), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        web = "werkzeug"
    except Exception as exc:
        print("web app not served:", exc, file=sys.stderr)
    print("ready", web, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    stop.wait()
    agent.stop()
    """
)


def presence(identity, event: str) -> tuple[str, bytes, dict]:
    msg = {
        "v": 1,
        "event": event,
        "nodeId": identity.node_id,
        "timestamp": now_ts(),
        "region": "EU-WEST",
        "version": "0.1.0",
        "tasksReported": 10,
    }
    payload = json.dumps(msg, separators=(",", ":")).encode()
    return f"tbfed.v1.presence.{identity.node_id}", payload, identity.headers(payload)


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    with nats_server() as url:
        env = {
            **os.environ,
            "DATA_DIR": tempfile.mkdtemp(prefix="bench-rss-"),
            "NODE_LOG_SOURCE": "none",
            "ENABLE_FEDERATION": "true",
            "FEDERATION_SEED_URL": url,
            "MONITOR_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-c", AGENT], env=env, stdout=subprocess.PIPE, text=True)
        try:
            ready = proc.stdout.readline().split()
            web = ready[1] if len(ready) > 1 else "?"
            ps = psutil.Process(proc.pid)
            time.sleep(3)
            idle = [rss_mb(ps) for _ in range(5) if not time.sleep(0.2)]
            peers = [load_identity(tempfile.mkdtemp(prefix="bench-peer-")) for _ in range(args.peers)]
            loop = LoopThread()
            nc = loop.run(connect(url))

            async def send(event: str) -> None:
                for ident in peers:
                    subject, payload, headers = presence(ident, event)
                    await nc.publish(subject, payload, headers=headers)
                await nc.flush()

            loop.run(send("node_online"))
            samples = []
            end = time.monotonic() + args.seconds
            next_beat = time.monotonic() + 5.1
            while time.monotonic() < end:
                if time.monotonic() >= next_beat:
                    loop.run(send("node_heartbeat"))
                    next_beat += 5.1
                samples.append(rss_mb(ps))
                time.sleep(0.5)
            loop.run(nc.close())
            loop.close()
            seen = "?"
            if web == "werkzeug":
                import httpx

                seen = httpx.get(f"http://127.0.0.1:{env['MONITOR_PORT']}/api/federation/peers").json()[
                    "total"
                ]
            print(f"agent process (federation on, web: {web}): idle RSS {median(idle):.1f} MB")
            print(
                f"with {args.peers} peers sending presence for {args.seconds:.0f} s: median RSS "
                f"{median(samples):.1f} MB, max {max(samples):.1f} MB   (target <= 60 MB); peers seen by the agent: {seen}"
            )
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
