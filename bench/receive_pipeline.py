"""Receive pipeline throughput: signed messages received, validated, verified and stored per second.

Three measurements on the same signed messages, in one process and one run:
  agent   a real Agent subscribed to a real nats-server: publish N, time until N rows are stored
  (a)     a bare nats-py subscriber that only counts the same N messages
  (b)     bare Ed25519 verification of the same N messages (cryptography, keys parsed once)
and, with --store-rows, how the store's stats and newest-first query behave with that many rows.

With --compare-rev REV it measures only the agent, alternating between REV (checked out into a
temporary git worktree) and this tree, one fresh process each, and prints both medians and the
ratio this/REV: the cost of a change to the receive rules, on the same machine in the same run.

    /work/venv/bin/python bench/receive_pipeline.py [--messages 20000] [--runs 3] [--store-rows 1000000]
    /work/venv/bin/python bench/receive_pipeline.py --compare-rev d2c547d --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# BENCH_SOURCE_ROOT: measure the agent of another checkout (--compare-rev) with this bench's code.
sys.path.insert(0, str(HERE))
sys.path.insert(0, os.environ.get("BENCH_SOURCE_ROOT") or str(HERE.parent))

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
        cpu_start = time.process_time()
        pub.run(publish_all(url, messages))
        while agent.store.federation_counts()["tasks"] < n:
            if time.perf_counter() - start > 120:
                raise SystemExit(
                    f"only {agent.store.federation_counts()} stored; {agent.federation.counters()}"
                )
            time.sleep(0.001)
        elapsed = time.perf_counter() - start
        # CPU seconds of this whole process (agent threads and the publisher): on a loaded machine
        # less noisy than wall time. The 1 ms polling above adds a little to both sides alike.
        counters = agent.federation.counters()
        counters["cpu_rate"] = n / (time.process_time() - cpu_start)
        return n / elapsed, counters
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


def agent_only(n: int) -> None:
    """One agent measurement in this process (a child of --compare-rev): prints `AGENT <msg/s>`."""
    pub = LoopThread()
    with nats_server() as url:
        rate, counters = agent_pipeline(url, make_messages(n, "c"), pub)
    pub.close()
    assert not counters["drops"], counters["drops"]
    print(f"AGENT {rate:.1f} {counters['cpu_rate']:.1f} {sys.modules[Agent.__module__].__file__}", flush=True)


def rules_only(rev: str, runs: int, n: int) -> None:
    """The receive rules alone, old (REV's pipeline.py, loaded beside this one) against new, in
    this process, alternating, CPU time: what the rules cost without NATS, SQLite or the machine's
    other load in the way. Each side gets a fresh pipeline per round, wired to a real Store."""
    import types

    from monitor_agent.federation import pipeline as new_pipeline
    from monitor_agent.store import Store

    source = subprocess.run(
        ["git", "-C", str(HERE.parent), "show", f"{rev}:monitor_agent/federation/pipeline.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    old_pipeline = types.ModuleType("monitor_agent.federation._bench_old_pipeline")
    old_pipeline.__package__ = "monitor_agent.federation"
    sys.modules[old_pipeline.__name__] = old_pipeline  # dataclasses look their module up
    exec(compile(source, f"{rev}:pipeline.py", "exec"), old_pipeline.__dict__)  # noqa: S102 - our own file at REV
    messages = make_messages(n, "rules")
    store = Store(Path(tempfile.mkdtemp(prefix="bench-rules-")) / "x.db")

    def make(label: str):
        if label == "rev":
            return old_pipeline.ReceivePipeline("node-0000000000", pinned_key=store.pinned_key)
        return new_pipeline.ReceivePipeline(
            "node-0000000000",
            pinned_key=store.pinned_key,
            pinned_node=store.node_for_key,
            retention_s=7 * 86_400,
            seen_task=store.has_federation_task,
            seen_floor=((store.last_federation_received_at() or -1e15) / 1000) + 300,
        )

    cpu: dict[str, list[float]] = {"rev": [], "this": []}
    for run in range(runs):
        for label in ("rev", "this") if run % 2 == 0 else ("this", "rev"):
            p = make(label)
            now = time.time()
            t = time.process_time()
            for subject, payload, headers in messages:
                verdict = p.process(subject, payload, headers, now)
                if verdict.__class__.__name__ != "Accepted":
                    raise SystemExit(f"{label}: {verdict}")
            cpu[label].append(n / (time.process_time() - t))
    store.close()
    a, b = median(cpu["rev"]), median(cpu["this"])
    print(f"\nreceive rules alone (validate + verify + rules, no NATS, no store writes), median of {runs}:")
    print(f"  {rev}: {a:,.0f} msg/s CPU   this tree: {b:,.0f} msg/s CPU   ratio this/{rev} = {b / a:.3f}")


def compare(rev: str, runs: int, n: int) -> None:
    root = HERE.parent
    old = Path(tempfile.mkdtemp(prefix="bench-rev-")) / "tree"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(old), rev], check=True)
    rates: dict[str, list[float]] = {"rev": [], "this": []}
    cpu: dict[str, list[float]] = {"rev": [], "this": []}
    try:
        for run in range(runs):
            order = [("rev", old), ("this", root)]
            for label, tree in order if run % 2 == 0 else reversed(order):
                for attempt in (1, 2):  # a loaded machine can time a child out: one retry, then give up
                    res = subprocess.run(
                        [
                            sys.executable,
                            str(HERE / "receive_pipeline.py"),
                            "--agent-only",
                            "--messages",
                            str(n),
                        ],
                        env={**os.environ, "BENCH_SOURCE_ROOT": str(tree)},
                        capture_output=True,
                        text=True,
                    )
                    if res.returncode == 0:
                        break
                    print(
                        f"  ({label} run failed, attempt {attempt}: {res.stderr.strip().splitlines()[-1:]})"
                    )
                else:
                    raise SystemExit(res.stderr)
                fields = res.stdout.split("AGENT ")[1].split()
                rates[label].append(float(fields[0]))
                cpu[label].append(float(fields[1]))
            print(
                f"run {run + 1}: {rev} {rates['rev'][-1]:,.0f} msg/s ({cpu['rev'][-1]:,.0f}/CPU-s)   "
                f"this tree {rates['this'][-1]:,.0f} msg/s ({cpu['this'][-1]:,.0f}/CPU-s)",
                flush=True,
            )
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(old)], check=False)
        shutil.rmtree(old.parent, ignore_errors=True)
    a, b = median(rates["rev"]), median(rates["this"])
    ca, cb = median(cpu["rev"]), median(cpu["this"])
    pairs = median([t / r for t, r in zip(rates["this"], rates["rev"], strict=True)])
    print(f"\nmedian of {runs} alternating runs, {n} signed messages each, one fresh agent process per run:")
    print(f"  wall: {rev}: {a:,.0f} msg/s   this tree: {b:,.0f} msg/s   ratio this/{rev} = {b / a:.3f}")
    print(f"        median of the per-run ratios: {pairs:.3f}")
    print(f"  CPU:  {rev}: {ca:,.0f} msg/CPU-s   this tree: {cb:,.0f} msg/CPU-s   ratio = {cb / ca:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--store-rows", type=int, default=0)
    ap.add_argument("--compare-rev", help="measure the agent of this git revision against this tree")
    ap.add_argument("--agent-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.agent_only:
        return agent_only(args.messages)
    if args.compare_rev:
        rules_only(args.compare_rev, max(args.runs, 5), args.messages)
        return compare(args.compare_rev, args.runs, args.messages)
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
