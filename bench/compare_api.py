"""Me vs network: GET /api/compare under live ingest with 1 000 000 stored federation rows,
and the CPU cost of keeping the sketches per 1 000 events.

Part 1 (API). A real `monitor-agent run` (gunicorn, one gthread worker; federation on,
receiving, broadcasting nothing) on a real nats-server, over a database of 1 000 000 received
tasks spread over the last 24 h (200 nodes, chains 1 / 43113 / 43114, two task types, 5 %
failed), so the start-up seeding loads every row into the sketches. While 20 signed publishers
send task events at `--ingest` msg/s, a separate process drives 16 keep-alive connections,
first at GET /api/health (the baseline), then at /api/compare?chainId=1&window=1h and
?window=24h (every chain). Figures: req/s, p50 / p99 and their ratio to the baseline; the
seeding time; the worker's RSS. Target: p99 <= 20 ms.

Part 2 (CPU). 100 000 received rows (200 nodes, 3 chains, 2 types) stored through the real
Store batch writer twice, without and with the comparison fed from its stored-rows callback;
the CPU time difference per 1 000 events, and the Comparator alone on the same rows.

    .venv/bin/python bench/compare_api.py [--rows 1000000] [--seconds 10] [--ingest 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import connect, free_port, nats_server, now_ts  # noqa: E402
from _web_bench import agent_process, pct  # noqa: E402
from api_load import _drive, build_database  # noqa: E402

from seed.supervisor import Child  # noqa: E402

PATHS = {
    "health": "/api/health",
    "compare 1h chain 1": "/api/compare?chainId=1&window=1h",
    "compare 24h all chains": "/api/compare?window=24h",
}


def client_main(port: int, seconds: float, connections: int) -> None:
    results = {}
    for name, path in PATHS.items():
        asyncio.run(_drive(port, path, 2.0, connections))  # warm-up
        results[name] = asyncio.run(_drive(port, path, seconds, connections))
    print(json.dumps(results))


class Publishers:
    """20 real identities publishing signed task events at a steady total rate."""

    def __init__(self, url: str, rate: float, tmp: Path):
        from monitor_agent.identity import load_identity

        self.url, self.rate = url, rate
        self.ids = [load_identity(tmp / f"pub{i}") for i in range(20)]
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        nc = await connect(self.url)
        rng = random.Random(3)
        n = 0
        t0 = time.perf_counter()
        while not self.stop.is_set():
            due = int((time.perf_counter() - t0) * self.rate)
            while n < due:
                ident = self.ids[n % len(self.ids)]
                failed = rng.random() < 0.05
                msg = {
                    "v": 1, "event": "task_failed" if failed else "task_completed", "nodeId": ident.node_id,
                    "taskId": f"global-task-{0xC0000000 + n:012x}", "chainId": rng.choice((1, 43113, 43114)),
                    "blockNumber": 19_000_000 + n, "taskType": "wasm", "status": "failed" if failed else "completed",
                    "executionTimeMs": None if failed else rng.randint(50, 900), "timestamp": now_ts(),
                }  # fmt: skip
                payload = json.dumps(msg, separators=(",", ":")).encode()
                await nc.publish(f"tbfed.v1.task.{ident.node_id}", payload, headers=ident.headers(payload))
                n += 1
            await nc.flush()
            await asyncio.sleep(0.01)
        self.sent = n
        await nc.close()


def worker_rss_mb(proc: Child) -> float:
    kids = psutil.Process(proc.pid).children(recursive=True)
    return max((k.memory_info().rss for k in kids), default=0) / 2**20


def api_part(args) -> None:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-compare-"))
    if not (data_dir / "truebit-monitor.db").exists():
        t0 = time.perf_counter()
        build_database(data_dir, args.rows, span_ms=86_400_000 - 60_000, types=("wasm", "js"))
        print(f"built {args.rows:,} rows over the last 24 h in {time.perf_counter() - t0:.1f} s ({data_dir})")
    with nats_server() as url:
        port = free_port()
        env = {"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": url, "FEDERATION_BROADCAST_TASKS": "false",
               "FEDERATION_BROADCAST_STATS": "false"}  # fmt: skip
        t_start = time.perf_counter()
        with agent_process(port, str(data_dir), **env) as proc:
            while httpx.get(f"http://127.0.0.1:{port}/api/compare", timeout=30).json()["seeding"]:
                time.sleep(0.2)
            seeded = time.perf_counter() - t_start
            rss_seeded = worker_rss_mb(proc)
            pubs = Publishers(url, args.ingest, Path(tempfile.mkdtemp(prefix="bench-pubs-")))
            pubs.thread.start()
            time.sleep(2)
            before = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            t_load = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--client", str(port), "--seconds", str(args.seconds),
                 "--connections", str(args.connections)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            load_s = time.perf_counter() - t_load
            after = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            pubs.stop.set()
            pubs.thread.join(10)
            rss_end = worker_rss_mb(proc)
    stored = _metric(after, "federation_tasks_stored_total") - _metric(
        before, "federation_tasks_stored_total"
    )
    results = json.loads(out)
    base = results["health"]
    print(f"{args.connections} connections, {args.seconds:.0f} s per endpoint, {args.rows:,} rows stored;"
          f" ingest during the load: {stored / load_s:.0f} events/s stored (target {args.ingest:.0f})")  # fmt: skip
    print(
        f"  start-up to seeded sketches: {seeded:.1f} s; worker RSS {rss_seeded:.1f} MB seeded, {rss_end:.1f} MB at the end"
    )
    for name, lat in results.items():
        print(
            f"  GET {PATHS[name]}: {len(lat) / args.seconds:.0f} req/s, p50 {pct(lat, 50) * 1000:.1f} ms,"
            f" p99 {pct(lat, 99) * 1000:.1f} ms"
            + (
                ""
                if name == "health"
                else f" (x{pct(lat, 50) / pct(base, 50):.2f} / x{pct(lat, 99) / pct(base, 99):.2f} of health)"
            )
        )
        if name != "health":
            print(f"    target p99 <= 20 ms: {'met' if pct(lat, 99) * 1000 <= 20 else 'NOT met'}")


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def cpu_part(n: int = 100_000) -> None:
    from monitor_agent.compare import Comparator
    from monitor_agent.store import FederationTaskRow, Store

    rng = random.Random(5)
    now = int(time.time() * 1000)
    rows = []
    for i in range(n):
        failed = rng.random() < 0.05
        rows.append(
            FederationTaskRow(
                f"node-{i % 200:010x}", f"global-task-{i:012x}", "task_failed" if failed else "task_completed",
                rng.choice((1, 43113, 43114)), None, ("wasm", "js")[i % 2], "failed" if failed else "completed",
                None if failed else rng.randint(50, 900), now_ts(), now - (n - i) * 800,
            )
        )  # fmt: skip

    def store_cpu(callback) -> float:
        tmp = Path(tempfile.mkdtemp(prefix="bench-compare-cpu-"))
        store = Store(tmp / "db.sqlite", on_federation_stored=callback)
        t0 = time.process_time()
        for r in rows:
            while not store.enqueue_federation_task(r):
                time.sleep(0.001)
        store.flush(120)
        cpu = time.process_time() - t0
        store.close()
        return cpu

    runs_without, runs_with, alone = [], [], []
    for _ in range(3):
        runs_without.append(store_cpu(None))
        comparator = Comparator()
        runs_with.append(store_cpu(comparator.add_federation_rows))
        c2 = Comparator()
        t0 = time.process_time()
        for i in range(0, n, 500):
            c2.add_federation_rows(rows[i : i + 500])
        alone.append(time.process_time() - t0)
    med = sorted
    w, wo, a = med(runs_with)[1], med(runs_without)[1], med(alone)[1]
    print(f"CPU per 1 000 received events ({n:,} rows, 200 nodes, 3 chains x 2 types; medians of 3):")
    print(f"  store batch writer alone: {wo / n * 1000 * 1000:.1f} ms; with the sketches: {w / n * 1000 * 1000:.1f} ms"
          f" (+{(w - wo) / n * 1000 * 1000:.1f} ms, x{w / wo:.2f})")  # fmt: skip
    print(f"  Comparator.add_federation_rows alone: {a / n * 1000 * 1000:.1f} ms")
    memory_part()


def memory_part(n: int = 1_000_000) -> None:
    """RSS growth of one process holding the comparison of `n` events over 24 h, and the CPU of
    computing the answers from it."""
    import gc

    from monitor_agent.compare import Comparator

    rng = random.Random(5)
    now = int(time.time() * 1000)
    span = 86_400_000
    gc.collect()
    before = psutil.Process().memory_info().rss
    c = Comparator()
    for i in range(n):
        failed = rng.random() < 0.05
        c.add_federation(
            f"node-{i % 200:010x}", rng.choice((1, 43113, 43114)), ("wasm", "js")[i % 2],
            "task_failed" if failed else "task_completed", rng.randint(50, 900), now - span + span * i // n,
        )  # fmt: skip
    gc.collect()
    grown = (psutil.Process().memory_info().rss - before) / 2**20
    t0 = time.process_time()
    c.compare(None, None, "24h", now_ms=now)
    day = time.process_time() - t0
    t0 = time.process_time()
    c.compare(1, None, "1h", now_ms=now)
    hour = time.process_time() - t0
    print(f"{n:,} events over 24 h (200 nodes, 3 chains x 2 types) held in memory: RSS +{grown:.1f} MB;")
    print(
        f"  computing the 24 h answer for every chain: {day * 1000:.0f} ms CPU; 1 h for chain 1: {hour * 1000:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--ingest", type=float, default=200)
    ap.add_argument("--data-dir", help="reuse a database built by an earlier run (its rows age)")
    ap.add_argument("--only", choices=("api", "cpu"), help="cpu: the CPU and memory parts only")
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.seconds, args.connections)
        return
    if args.only != "cpu":
        api_part(args)
    if args.only != "api":
        cpu_part()


if __name__ == "__main__":
    main()
