"""The store's own cost on the API's hot paths at 1 000 000 received rows, as CPU time per call.

What `GET /api/federation/tasks/global?limit=100&chainId=1` asks of the store (the page built
by SQLite, uncached and cached), what the status and stats endpoints ask (`network_stats`), and
one local task merge (`upsert_local_task`, the ingest path). CPU time of this process, so the
figure holds on a shared, loaded machine where wall-clock latency does not.

With --compare-rev REV it alternates fresh child processes between REV (checked out into a
temporary git worktree) and this tree on the same database and prints the medians and the
ratios this/REV: what a change to the store costs, in the same run.

    .venv/bin/python bench/store_queries.py [--rows 1000000] [--data-dir DIR] [--runs 5]
    .venv/bin/python bench/store_queries.py --compare-rev 88e2ed2 --runs 5 --data-dir /tmp/bench-store
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# BENCH_SOURCE_ROOT: measure the store of another checkout (--compare-rev) with this bench's code.
sys.path.insert(0, str(HERE))
sys.path.insert(0, os.environ.get("BENCH_SOURCE_ROOT") or str(HERE.parent))


def _cpu_per_call(fn, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def measure(db: Path) -> dict[str, float]:
    """CPU µs per call of each hot path, on a copy-free open of `db` (one child process)."""
    from datetime import UTC, datetime

    from monitor_agent.model import TaskEvent
    from monitor_agent.store import Store
    from monitor_agent.web.serializers import FEDERATION_TASK_SQL as FEED_SQL  # the API's page shape

    store = Store(db, start_writer=False)

    def invalidate() -> None:  # the page cache of either layout
        if hasattr(store, "feed"):
            store.feed.invalidate()
        else:
            store._feed_generation += 1  # noqa: SLF001 - the layout before the split

    def uncached() -> None:
        invalidate()
        store.query_federation_tasks_json(FEED_SQL, 100, 1, None)

    local_db = Path(tempfile.mkdtemp(prefix="bench-store-local-")) / "l.db"
    local = Store(local_db, start_writer=False)
    at = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    counter = iter(range(10**9))

    def merge() -> None:
        local.upsert_local_task(
            TaskEvent("received", f"exec-{next(counter)}", at, chain_id=1, task_type="js")
        )

    uncached()  # warm the page cache of SQLite
    out = {
        "feed page, uncached": _cpu_per_call(uncached, 1_000),
        "feed page, cached": _cpu_per_call(
            lambda: store.query_federation_tasks_json(FEED_SQL, 100, 1, None), 20_000
        ),
        "network_stats": _cpu_per_call(store.network_stats, 20_000),
        "upsert_local_task (new row)": _cpu_per_call(merge, 2_000),
    }
    store.close()
    local.close()
    shutil.rmtree(local_db.parent, ignore_errors=True)
    return {k: v * 1e6 for k, v in out.items()}


def ensure_db(data_dir: Path, rows: int) -> Path:
    db = data_dir / "truebit-monitor.db"
    if not db.exists():
        from api_load import build_database

        t = time.perf_counter()
        build_database(data_dir, rows)
        print(f"built {rows:,} rows in {time.perf_counter() - t:.1f} s ({data_dir})", flush=True)
    return db


def child(tree: Path, db: Path) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, str(HERE / "store_queries.py"), "--child", str(db)],
        env={**os.environ, "BENCH_SOURCE_ROOT": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--data-dir", help="reuse a database built by an earlier run (or api_load.py)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare-rev", help="measure the store of this git revision against this tree")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child))))
        return
    db = ensure_db(Path(args.data_dir or tempfile.mkdtemp(prefix="bench-store-")), args.rows)
    trees = {"this": HERE.parent}
    old = None
    if args.compare_rev:
        old = Path(tempfile.mkdtemp(prefix="bench-rev-")) / "tree"
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "-q", "--detach", str(old),
                        args.compare_rev], check=True)  # fmt: skip
        trees = {args.compare_rev: old, "this": HERE.parent}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    try:
        for run in range(args.runs):
            order = list(trees) if run % 2 == 0 else list(reversed(trees))
            for label in order:
                results[label].append(child(trees[label], db))
            print(f"run {run + 1}: " + "   ".join(
                f"{label}: " + ", ".join(f"{v:.0f}" for v in results[label][-1].values()) for label in trees
            ), flush=True)  # fmt: skip
    finally:
        if old is not None:
            subprocess.run(
                ["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(old)], check=False
            )
            shutil.rmtree(old.parent, ignore_errors=True)
    print(f"\nCPU µs per call, median of {args.runs} runs (fresh process each), {args.rows:,} rows:")
    for key in results["this"][0]:
        meds = {label: statistics.median(r[key] for r in results[label]) for label in trees}
        line = "   ".join(f"{label}: {v:,.1f}" for label, v in meds.items())
        if args.compare_rev:
            line += f"   ratio this/{args.compare_rev} = {meds['this'] / meds[args.compare_rev]:.3f}"
        print(f"  {key:<30} {line}")


if __name__ == "__main__":
    main()
