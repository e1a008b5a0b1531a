"""Benchmark: a full `seedctl health` of a 3-node cluster vs bare `httpx.get(/varz)` of the three.

    /work/venv/bin/python bench/health_bench.py [--rounds 30]

Starts a real 3-node nats-server cluster on loopback (seedctl's own lifecycle) in a temp dir,
then, in this one process, alternates: the baseline (three sequential `httpx.get(.../varz)`, the
simplest thing an operator would script) and the full health run exactly as the CLI does it
(fresh DigestOracle, so the drift check renders and runs `nats-server -t` each time). Prints
medians and the ratio; also the cached-oracle figure (what the console pays per round) and the
wall time of the real `seedctl health` process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _seed_bench import running_cluster  # noqa: E402

from seed.health import DigestOracle, run_health  # noqa: E402
from seed.health.status import Status  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="health-bench-") as tmp:
        with running_cluster(Path(tmp), timeout=15) as (spec_path, spec):
            urls = [s.monitor_url + "/varz" for s in spec.servers]
            base, full, cached = [], [], []
            oracle = DigestOracle()
            run_health(spec, oracle=oracle)  # warm imports and the shared oracle
            for _ in range(args.rounds):
                t = time.perf_counter()
                for u in urls:
                    httpx.get(u).json()
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                reports = run_health(spec, oracle=DigestOracle())
                full.append(time.perf_counter() - t)
                assert all(r.status is Status.OK for r in reports), [r.failing for r in reports]
                t = time.perf_counter()
                run_health(spec, oracle=oracle)
                cached.append(time.perf_counter() - t)
            cli = []
            exe = str(Path(sys.executable).parent / "seedctl")
            for _ in range(5):
                t = time.perf_counter()
                subprocess.run([exe, "health", "--spec", str(spec_path), "--stateless", "-q"], check=True,
                               capture_output=True)  # fmt: skip
                cli.append(time.perf_counter() - t)
    b, f, c = median_ms(base), median_ms(full), median_ms(cached)
    print(f"rounds: {args.rounds}, 3-node cluster, 13 checks per server")
    print(f"baseline  3x httpx.get(/varz)          median {b:7.1f} ms")
    print(f"health    full run (fresh drift oracle) median {f:7.1f} ms   ratio {f / b:.2f}x")
    print(f"health    cached drift digests          median {c:7.1f} ms   ratio {c / b:.2f}x")
    print(f"seedctl health process (5 runs)        median {median_ms(cli):7.1f} ms (incl. Python start-up)")


if __name__ == "__main__":
    main()
