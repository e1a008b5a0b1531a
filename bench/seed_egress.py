"""Seed egress and CPU vs N when every node subscribes (the N² term of docs/capacity.md).

    python bench/seed_egress.py                      # N = 100, 300, 600; 20 s windows
    python bench/seed_egress.py --n 100,200 --duration 30

One real nats-server from a generated spec (seedctl's code). N connections in this process, each
like an agent: it subscribes to `tbfed.v1.>` and publishes `--rate` messages/s of `--size` bytes
(defaults 0.11 msg/s of 340 B: what bench/federation_scale.py measured per node, 38 B/s). Reports
the seed's out bytes/s and CPU (/varz) and the model's prediction N² · rate · size for comparison.
(`bench/federation_scale.py`'s simulated nodes publish only, so its egress column is not N².)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import yaml  # noqa: E402

from seed import lifecycle  # noqa: E402
from seed.monitoring import MonitorClient, new_http_client  # noqa: E402
from seed.spec import load_spec  # noqa: E402
from seed.users import effective_users, user_password  # noqa: E402
from tests.plugins.seed import build_spec_data  # noqa: E402
from tests.plugins.tools import unique_ports  # noqa: E402


async def run_n(url: str, monitor: str, n: int, rate: float, size: int, duration: float) -> dict:
    received = 0

    async def cb(_msg):
        nonlocal received
        received += 1

    conns = []
    for _ in range(n):
        nc = await nats.connect(url, max_reconnect_attempts=0)
        await nc.subscribe("tbfed.v1.>", cb=cb, pending_msgs_limit=1_000_000)
        conns.append(nc)
    payload = b"x" * size
    stop = asyncio.Event()

    async def node(nc, i):
        await asyncio.sleep(random.random() / rate)  # noqa: S311 - spread, not security
        while not stop.is_set():
            await nc.publish(f"tbfed.v1.task.node-{i:010x}", payload)
            await asyncio.sleep(random.expovariate(rate))  # noqa: S311

    tasks = [asyncio.create_task(node(nc, i)) for i, nc in enumerate(conns)]
    await asyncio.sleep(3)  # warm up
    async with new_http_client(2) as http:
        seed = MonitorClient(http, monitor, timeout=5.0)
        v0 = await seed.varz()
        r0, t0 = received, time.monotonic()
        cpus = []
        while time.monotonic() - t0 < duration:
            await asyncio.sleep(2)
            cpus.append((await seed.varz())["cpu"])
        v1 = await seed.varz()
        dt = time.monotonic() - t0
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for nc in conns:
        await nc.close()
    out_bps = (v1["out_bytes"] - v0["out_bytes"]) / dt
    return {
        "n": n,
        "in_msgs_per_s": round((v1["in_msgs"] - v0["in_msgs"]) / dt, 1),
        "out_msgs_per_s": round((v1["out_msgs"] - v0["out_msgs"]) / dt, 1),
        "out_kb_per_s": round(out_bps / 1024, 1),
        "model_out_kb_per_s": round(n * n * rate * size / 1024, 1),
        "per_subscriber_kb_per_s": round(out_bps / n / 1024, 2),
        "seed_cpu_pct_median": statistics.median(cpus) if cpus else None,
        "received_per_s_here": round((received - r0) / dt, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100,300,600")
    ap.add_argument("--rate", type=float, default=0.11)
    ap.add_argument("--size", type=int, default=340)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--binary", default=shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="egress-bench-"))
    data = build_spec_data(unique_ports(), limits={"lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1})
    (root / "seed.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(root / "seed.yaml")
    mon = next(u for u in effective_users(spec) if u.name == "monitor")
    pw = user_password(spec, mon)
    for u in effective_users(spec):
        user_password(spec, u)
    server = spec.servers[0]
    url = f"nats://monitor:{pw}@127.0.0.1:{server.client_port}"
    lifecycle.up(spec, None, None, args.binary, timeout=60)
    try:
        for n in (int(x) for x in args.n.split(",")):
            print(json.dumps(asyncio.run(run_n(url, server.monitor_url, n, args.rate, args.size, args.duration))))
    finally:
        lifecycle.down(spec, None, None, timeout=5.0, lame_duck=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
