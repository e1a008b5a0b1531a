"""Catch-up after an outage (issue 16): how fast an agent closes a hole from the seeds' history.

    python bench/catch_up.py                         # 10-min hole at 20 events/s, 3 rounds, 1 seed
    python bench/catch_up.py --servers 3             # a 3-seed cluster, stream replicas 3
    python bench/catch_up.py --hole-s 60 --rate 20 --rounds 1

Everything is real: nats-server with JetStream started by seedctl's code from a spec with
`history:`, the stream made by `seed.history.ensure_stream`, an in-process monitor agent
(real SQLite, real nats-py) and members publishing signed task events (monitor_agent.identity).
A hole of `hole_s * rate` events is published while the agent is stopped, by `rate * 10`
members (each 0.1 event/s: the history's stream time is compressed here, so more members keep
every member's replayed rate within the receive rules' burst, as in a real hole). Then the agent
starts and we time, per round: connect -> every missed event stored. Also reports the stream's
bytes per event and the JetStream store on disk per million events. Medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import yaml  # noqa: E402

from monitor_agent.agent import Agent  # noqa: E402
from monitor_agent.config import load_config  # noqa: E402
from monitor_agent.identity import load_identity  # noqa: E402
from monitor_agent.protocol import history_stream  # noqa: E402
from seed import history, lifecycle  # noqa: E402
from seed.spec import load_spec  # noqa: E402
from seed.users import effective_users, user_password  # noqa: E402
from tests.plugins.seed import build_spec_data  # noqa: E402
from tests.plugins.tools import unique_ports  # noqa: E402


def _task(node_id: str, n: int) -> bytes:
    msg = {
        "v": 1, "event": "task_completed", "nodeId": node_id, "taskId": f"global-task-{n:012x}",
        "chainId": 1, "blockNumber": 18950234, "taskType": "wasm", "status": "completed",
        "executionTimeMs": 245, "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip
    return json.dumps(msg, separators=(",", ":")).encode()


async def publish_hole(url, members, per_member: int, base: int, **connect) -> None:
    """`per_member` signed task events of each member (taskType wasm: countable apart from live
    traffic), straight into the seeds while the agent is away; `connect`: nats-py auth options."""
    nc = await nats.connect(url, **connect)
    try:
        for i, m in enumerate(members):
            for k in range(per_member):
                payload = _task(m.node_id, base + i * 100_000 + k)
                await nc.publish(f"tbfed.v1.task.{m.node_id}", payload, headers=m.headers(payload))
            if i % 20 == 0:
                await nc.flush(timeout=30)
        await nc.flush(timeout=30)
    finally:
        await nc.close()


async def _stream_state(url: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(history_stream())
        return info.state.messages, info.state.bytes
    finally:
        await nc.close()


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hole-s", type=int, default=600, help="outage length, s (default 600)")
    ap.add_argument("--rate", type=int, default=20, help="federation task events/s during the hole")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--servers", type=int, default=1, choices=(1, 3))
    ap.add_argument("--binary", default=shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server"))
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="catchup-bench-"))
    data = build_spec_data(unique_ports(), servers=args.servers, history={"max_age": "24h", "max_bytes": "4GiB"})
    (root / "seed.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(root / "seed.yaml")
    for u in effective_users(spec):
        user_password(spec, u)
    monitor = next(u for u in effective_users(spec) if u.name == "monitor")
    pw = user_password(spec, monitor)
    urls = [f"nats://monitor:{pw}@127.0.0.1:{s.client_port}" for s in spec.servers]
    lifecycle.up(spec, None, None, args.binary, timeout=60)
    try:
        history.ensure_stream(spec, timeout=60)
        events = args.hole_s * args.rate
        members = [load_identity(root / f"m{i}") for i in range(max(1, args.rate * 10))]
        per_member = max(1, events // len(members))
        events = per_member * len(members)
        took, rates = [], []
        agent_dir = root / "agent"
        env = {
            "DATA_DIR": str(agent_dir), "NODE_LOG_SOURCE": "none", "ENABLE_FEDERATION": "true",
            "FEDERATION_SEED_URL": ",".join(urls), "FEDERATION_RECONNECT_TIMEOUT": "500",
        }  # fmt: skip
        for rnd in range(args.rounds):
            agent = Agent(load_config(env))
            agent.start()
            t0 = time.monotonic()
            while not (agent.status()["catchUp"]["lastCompletedAt"]) and time.monotonic() - t0 < 60:
                time.sleep(0.05)
            agent.store.flush()
            before = agent.store.query_federation_tasks(1)[1]
            agent.stop()
            asyncio.run(publish_hole(urls[0], members, per_member, base=rnd * 10_000))
            agent = Agent(load_config(env))
            t0 = time.monotonic()
            agent.start()
            while time.monotonic() - t0 < 600:
                agent.store.flush()
                if agent.store.query_federation_tasks(1)[1] >= before + events:
                    break
                time.sleep(0.05)
            dt = time.monotonic() - t0
            agent.store.flush()
            stored = agent.store.query_federation_tasks(1)[1] - before
            agent.stop()
            took.append(dt)
            rates.append(stored / dt)
            print(f"round {rnd + 1}: {stored}/{events} missed events stored in {dt:.2f} s ({stored / dt:.0f}/s)")
        messages, nbytes = asyncio.run(_stream_state(urls[0]))
        disk = sum(_du(spec.state_dir / s.name / "jetstream") for s in spec.servers) / len(spec.servers)
        print(
            json.dumps(
                {
                    "servers": args.servers,
                    "hole_s": args.hole_s,
                    "rate": args.rate,
                    "events_per_hole": events,
                    "members": len(members),
                    "catch_up_s_median": round(statistics.median(took), 2),
                    "catch_up_events_per_s_median": round(statistics.median(rates)),
                    "stream_bytes_per_event": round(nbytes / messages, 1),
                    "stream_mb_per_million_events": round(nbytes / messages, 1),
                    "disk_mb_per_million_events_per_server": round(disk / messages, 1),
                },
                indent=1,
            )
        )
    finally:
        lifecycle.down(spec, None, None, timeout=5.0, lame_duck=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
