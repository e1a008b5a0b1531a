"""API latency under load: GET /api/federation/tasks/global?limit=100&chainId=1 with 1 000 000 rows.

A real `monitor-agent run` (gunicorn, one gthread worker) serves a database holding 1 000 000
received federation tasks (chains 1 / 43113 / 43114, spread over 6 days). A separate process
drives 16 keep-alive HTTP/1.1 connections, each sending its next request as soon as the last
answer arrived, first at GET /api/health (the baseline), then at the global-task query, for
the same duration. Figures: p50 / p99 per endpoint and their ratio. Target: p99 <= 20 ms.

    /work/venv/bin/python bench/api_load.py [--rows 1000000] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import free_port  # noqa: E402
from _web_bench import agent_process, pct  # noqa: E402

TASKS_PATH = "/api/federation/tasks/global?limit=100&chainId=1"
HEALTH_PATH = "/api/health"


def build_database(data_dir: Path, rows: int, span_ms: int = 6 * 86_400_000, types=("wasm",)) -> None:
    """The agent's own schema (Store), filled in bulk the way the batch writer stores rows,
    received evenly over the last `span_ms`."""
    from monitor_agent.config import DB_FILE
    from monitor_agent.store import Store

    Store(data_dir / DB_FILE, start_writer=False).close()
    conn = sqlite3.connect(data_dir / DB_FILE)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    span = span_ms
    chains = (1, 1, 1, 1, 43113, 43113, 43113, 43114, 43114, 43114)
    nodes = [f"node-{i:010x}" for i in range(200)]
    batch = []
    for i in range(rows):
        at = now_ms - span + (span * i) // rows
        status = "failed" if rng.random() < 0.05 else "completed"
        batch.append(
            (nodes[i % 200], f"global-task-{i:012x}", "task_" + status, rng.choice(chains),
             18_000_000 + i, types[i % len(types)], status, rng.randint(50, 900),
             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at / 1000)), at)
        )  # fmt: skip
        if len(batch) == 50_000:
            conn.executemany(
                "INSERT INTO federation_tasks (source_node, task_id, event, chain_id, block_number, task_type, "
                "status, execution_time_ms, timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch,
            )
            conn.commit()
            batch.clear()
    if batch:
        conn.executemany(
            "INSERT INTO federation_tasks (source_node, task_id, event, chain_id, block_number, task_type, "
            "status, execution_time_ms, timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            batch,
        )
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


# ---- the load generator (runs in its own process: `api_load.py --client ...`) ----


async def _one_connection(port: int, path: str, until: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            status = int(head.split(b" ", 2)[1])
            await reader.readexactly(length)
            out.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
            if b"connection: close" in head.lower():  # the server closed keep-alive: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _drive(port: int, path: str, seconds: float, connections: int) -> list[float]:
    out: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_one_connection(port, path, until, out) for _ in range(connections)))
    return out


def client_main(port: int, seconds: float, connections: int) -> None:
    results = {}
    for name, path in (("health", HEALTH_PATH), ("tasks", TASKS_PATH)):
        asyncio.run(_drive(port, path, 2.0, connections))  # warm-up (page cache, thread pool)
        results[name] = asyncio.run(_drive(port, path, seconds, connections))
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--data-dir", help="reuse a database built by an earlier run")
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.seconds, args.connections)
        return
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-api-"))
    if not (data_dir / "truebit-monitor.db").exists():
        t0 = time.perf_counter()
        build_database(data_dir, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - t0:.1f} s ({data_dir})")
    port = free_port()
    with agent_process(port, str(data_dir)):
        out = subprocess.run(
            [sys.executable, __file__, "--client", str(port), "--seconds", str(args.seconds),
             "--connections", str(args.connections)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    results = json.loads(out)
    h, t = results["health"], results["tasks"]
    print(f"{args.connections} connections, {args.seconds:.0f} s per endpoint, {args.rows:,} rows stored")
    for name, lat in (("GET /api/health", h), (f"GET {TASKS_PATH}", t)):
        print(
            f"  {name}: {len(lat) / args.seconds:.0f} req/s, p50 {pct(lat, 50) * 1000:.1f} ms,"
            f" p99 {pct(lat, 99) * 1000:.1f} ms"
        )
    print(f"  ratio tasks/health: p50 x{pct(t, 50) / pct(h, 50):.2f}, p99 x{pct(t, 99) / pct(h, 99):.2f}")
    print("  target p99 <= 20 ms:", "met" if pct(t, 99) * 1000 <= 20 else "NOT met")


if __name__ == "__main__":
    main()
