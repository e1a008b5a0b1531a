"""Receive pipeline throughput: signed messages received, validated, verified and stored per second.

Three measurements on the same signed messages, in one process and one run:
  agent   a real Agent subscribed to a real nats-server: publish N, time until N rows are stored
  (a)     a bare nats-py subscriber that only counts the same N messages
  (b)     bare Ed25519 verification of the same N messages (cryptography, keys parsed once)
and, with --store-rows, how the store's stats and newest-first query behave with that many rows.

    /work/venv/bin/python bench/receive_pipeline.py [--messages 20000] [--runs 3] [--store-rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _federation_bench import LoopThread, connect, median, nats_server, signed_task  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from monitor_agent.agent import Agent  # noqa: E402
from monitor_agent.config import load_config  # noqa: E402
from monitor_agent.identity import b64url_decode, load_identity  # noqa: E402
from monitor_agent.protocol import RATE_LIMITS  # noqa: E402

BURST = int(RATE_LIMITS["task"][1])  # every sender stays within its burst: nothing is rate-limited


def make_messages(n: int, tag: str) -> list[tuple[str, bytes, dict]]:
    senders = [
        load_identity(tempfile.mkdtemp(prefix=f"bench-{tag}-")) for _ in range((n + BURST - 1) // BURST)
    ]
    return [signed_task(senders[i // BURST], i) for i in range(n)]


async def publish_all(url: str, messages) -> None:
    nc = await connect(url)
    for subject, payload, headers in messages:
        await nc.publish(subject, payload, headers=headers)
    await nc.flush(timeout=60)
    await nc.close()


def bare_subscriber(url: str, messages, pub: LoopThread, sub_loop: LoopThread) -> float:
    n = len(messages)
    state = {"count": 0, "done": None}

    async def setup():
        nc = await connect(url)
        state["done"] = asyncio.Event()

        async def cb(msg):
            state["count"] += 1
            if state["count"] == n:
                state["done"].set()

        await nc.subscribe("tbfed.v1.>", cb=cb, pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30)
        await nc.flush()
        return nc

    nc = sub_loop.run(setup())
    start = time.perf_counter()
    pub.run(publish_all(url, messages))
    sub_loop.run(asyncio.wait_for(state["done"].wait(), 120))
    elapsed = time.perf_counter() - start
    sub_loop.run(nc.close())
    return n / elapsed


def bare_verify(messages) -> float:
    """Baseline (b): Ed25519 verification alone, with the library the agent uses (libsodium)."""
    keys: dict[str, VerifyKey] = {}
    start = time.perf_counter()
    for _, payload, headers in messages:
        k = headers["Tbf-Key"]
        key = keys.get(k)
        if key is None:
            key = keys[k] = VerifyKey(b64url_decode(k))
        key.verify(payload, b64url_decode(headers["Tbf-Sig"]))
    return len(messages) / (time.perf_counter() - start)


def bare_verify_openssl(messages) -> float:
    """For reference: the same through `cryptography` (OpenSSL), which the agent used before."""
    keys: dict[str, Ed25519PublicKey] = {}
    start = time.perf_counter()
    for _, payload, headers in messages:
        k = headers["Tbf-Key"]
        key = keys.get(k)
        if key is None:
            key = keys[k] = Ed25519PublicKey.from_public_bytes(b64url_decode(k))
        key.verify(b64url_decode(headers["Tbf-Sig"]), payload)
    return len(messages) / (time.perf_counter() - start)


def agent_pipeline(url: str, messages, pub: LoopThread) -> tuple[float, dict]:
    data = tempfile.mkdtemp(prefix="bench-agent-")
    env = {
        "DATA_DIR": data,
        "NODE_LOG_SOURCE": "none",
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": url,
        "FEDERATION_BROADCAST_TASKS": "false",
        "FEDERATION_BROADCAST_STATS": "false",
    }
    agent = Agent(load_config(env))
    agent.start()
    try:
        deadline = time.monotonic() + 10
        while not agent.status()["connected"]:
            if time.monotonic() > deadline:
                raise SystemExit("agent did not connect")
            time.sleep(0.02)
        n = len(messages)
        start = time.perf_counter()
        pub.run(publish_all(url, messages))
        while agent.store.federation_counts()["tasks"] < n:
            if time.perf_counter() - start > 120:
                raise SystemExit(
                    f"only {agent.store.federation_counts()} stored; {agent.federation.counters()}"
                )
            time.sleep(0.001)
        elapsed = time.perf_counter() - start
        return n / elapsed, agent.federation.counters()
    finally:
        agent.stop()


def store_at_scale(rows: int) -> None:
    from monitor_agent.store import DAY_MS, Store, now_ms

    path = Path(tempfile.mkdtemp()) / "big.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    now = now_ms()
    t = time.perf_counter()
    conn.executemany(
        "INSERT INTO federation_tasks (source_node, task_id, event, chain_id, block_number, task_type, status, "
        "execution_time_ms, timestamp, received_at, first) VALUES (?, ?, 'task_completed', ?, 1, 'js', "
        "'completed', 100, '2024-01-15T10:30:00Z', ?, 1)",
        (
            (f"node-{i % 1000:010x}", f"global-task-{i:012x}", i % 3, now - (i * 86) % DAY_MS)
            for i in range(rows)
        ),
    )
    conn.commit()
    conn.close()
    print(f"store: {rows} rows inserted by raw SQL in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    store = Store(path)
    print(f"store: open (one-time seeding of the incremental stats) {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    for _ in range(1000):
        store.network_stats()
    print(f"store: network_stats() {1e6 * (time.perf_counter() - t) / 1000:.1f} us per call")
    for label, kw in (("newest 100", {}), ("newest 100 of one chain (+ total)", {"chain_id": 1})):
        t = time.perf_counter()
        _, total = store.query_federation_tasks(100, **kw)
        print(
            f"store: query_federation_tasks {label}: {1000 * (time.perf_counter() - t):.1f} ms (total {total})"
        )
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--store-rows", type=int, default=0)
    args = ap.parse_args()
    pub, sub = LoopThread(), LoopThread()
    results = {"agent": [], "bare_sub": [], "bare_verify": [], "bare_verify_openssl": []}
    with nats_server() as url:
        for run in range(args.runs):
            messages = make_messages(args.messages, f"r{run}")
            results["bare_verify"].append(bare_verify(messages))
            results["bare_verify_openssl"].append(bare_verify_openssl(messages))
            results["bare_sub"].append(bare_subscriber(url, messages, pub, sub))
            rate, counters = agent_pipeline(url, messages, pub)
            results["agent"].append(rate)
            print(
                f"run {run + 1}: agent {rate:,.0f} msg/s stored  bare-sub {results['bare_sub'][-1]:,.0f}  "
                f"bare-verify {results['bare_verify'][-1]:,.0f}  drops {counters['drops']}"
            )
    pub.close()
    sub.close()
    agent, bsub, bver = (median(results[k]) for k in ("agent", "bare_sub", "bare_verify"))
    print(f"\nmedian of {args.runs} runs, {args.messages} signed messages each:")
    print(f"  agent received+verified+stored: {agent:,.0f} msg/s   (target >= 5,000)")
    print(f"  (a) bare nats-py subscriber:     {bsub:,.0f} msg/s   ratio agent/(a) = {agent / bsub:.2f}")
    print(
        f"  (b) bare Ed25519 verification:   {bver:,.0f} msg/s   ratio agent/(b) = {agent / bver:.2f} (target >= 0.7)"
    )
    print(f"      (same through OpenSSL/cryptography: {median(results['bare_verify_openssl']):,.0f} msg/s)")
    if args.store_rows:
        store_at_scale(args.store_rows)


if __name__ == "__main__":
    main()
