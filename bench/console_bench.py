"""Benchmark: server time of the console's overview page with 3 seeds and 24 h of samples.

    /work/venv/bin/python bench/console_bench.py [--requests 500]

Starts 3 real nats-server seeds (a cluster) on loopback, fills the console's SQLite history with
24 h of 10-second samples for the three (25 920 rows, plus alerts), starts the real console app
with its sampler running, logs in, and times GET / (and the 24 h server page and the history
API) through the WSGI app in-process: that is the server time, without client or network.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _seed_bench import write_cluster_spec  # noqa: E402

from seed import lifecycle  # noqa: E402
from seed.console import create_app  # noqa: E402
from seed.console.history import History  # noqa: E402
from seed.health import CheckResult, Sample, ServerReport, Status  # noqa: E402
from seed.spec import load_spec  # noqa: E402


def fill_history(db: Path, names: list[str], now: float) -> int:
    """24 h of 10 s samples per seed, with a few alert episodes along the way."""
    h = History(db)
    rounds = 8640
    for i in range(rounds):
        ts = now - 86400 + i * 10
        reports = []
        for n, name in enumerate(names):
            bad = (i // 500) % 7 == n  # each seed has some failing stretches
            results = [CheckResult("reachable", Status.OK, "ok")]
            if bad:
                results.append(CheckResult("topology", Status.CRITICAL, "missing routes to seed-x"))
            figures = {"up": True, "connections": 100 + i % 50, "max_connections": 10000, "in_msgs_per_s": 40.0,
                       "out_msgs_per_s": 120.0, "mem_bytes": 30 << 20, "cpu_percent": 3.0, "slow_consumers": 0,
                       "routes_live": 2, "routes_expected": 2}  # fmt: skip
            reports.append(ServerReport(name, "http://x", Sample(name, "http://x", ts), results, figures))
        h.record(ts, reports)
    h.close()
    return rounds * len(names)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def timed(client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, (path, r.status_code)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        spec_path = write_cluster_spec(Path(tmp))
        spec = load_spec(spec_path)
        db = Path(tmp) / "console.db"
        t = time.perf_counter()
        rows = fill_history(db, spec.names, time.time())
        print(f"history: {rows} samples (24 h x 3 seeds) written in {time.perf_counter() - t:.1f} s")
        lifecycle.up(spec)
        app = create_app(spec_path, db_path=db, interval=10)
        try:
            sampler = app.extensions["sampler"]
            deadline = time.monotonic() + 15
            while sampler.rounds < 1:
                assert time.monotonic() < deadline, "no sample"
                time.sleep(0.05)
            client = app.test_client()
            page = client.get("/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            password = (spec.secrets_dir / "console.password").read_text().strip()
            assert client.post("/login", data={"csrf_token": token, "password": password}).status_code == 302
            timed(client, "/", 20)  # warm templates
            overview = timed(client, "/", args.requests)
            partial = timed(client, "/?partial=1", args.requests)
            hist = timed(client, "/api/seeds/seed-1/history?metric=connections&since=24h", 100)
            server = timed(client, "/server/seed-1?window=24h", 50)
        finally:
            app.extensions["sampler"].stop()
            lifecycle.down(spec, timeout=5, lame_duck=False)
    for label, xs in (("GET / (overview)", overview), ("GET /?partial=1 (refresh)", partial),
                      ("GET /api/.../history 24h", hist), ("GET /server/seed-1?window=24h", server)):  # fmt: skip
        print(
            f"{label:32s} n={len(xs):4d}  p50 {percentile(xs, 50):6.2f} ms  p99 {percentile(xs, 99):6.2f} ms"
        )


if __name__ == "__main__":
    main()
