"""Benchmark: `seedctl health --via nats` vs `--via http` of one 3-node cluster, and
`seedctl reload --via nats` vs SIGHUP, time to the proven config digest.

    /work/venv/bin/python bench/health_via_bench.py [--rounds 20] [--reloads 10]

Starts a real 3-node nats-server cluster on loopback (seedctl's own lifecycle) in a temp dir.
Health, in this one process, alternating so both ways see the same machine load:
  http: the CLI's run (fresh DigestOracle: render + `nats-server -t`), monitoring ports;
  nats: the same, through $SYS.REQ.SERVER.PING.* as the admin user (connect + 4 PINGs);
  and the console's per-round cost (cached digests; nats keeps its connection).
The admin user is measured both ways it can authenticate: bcrypt password (the default) and
nkey. Whole `seedctl health` processes are timed too. Reload: alternating changes of
limits.max_connections applied by `lifecycle.reload(via="signal")` and `(via="nats")` on all
three servers, wall time until every digest is proven. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _seed_bench import running_cluster  # noqa: E402

from seed import lifecycle  # noqa: E402
from seed.health import DigestOracle, Status, check_servers, run_health, sysreq  # noqa: E402
from seed.spec import load_spec  # noqa: E402


def med(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def health_rounds(spec, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"http": [], "nats": [], "http_cached": [], "nats_kept": []}
    oracle = DigestOracle()
    for via in ("http", "nats"):  # warm imports, the shared oracle, the TLS/bcrypt caches
        run_health(spec, oracle=oracle, via=via)

    async def kept_rounds() -> list[float]:
        nc = await sysreq.connect(spec)
        try:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                reps = await check_servers(spec, oracle=oracle, via="nats", sys_conn=nc)
                times.append(time.perf_counter() - t)
                assert all(r.status is Status.OK for r in reps), [r.failing for r in reps]
            return times
        finally:
            await nc.close()

    for _ in range(rounds):
        for via in ("http", "nats"):
            t = time.perf_counter()
            reps = run_health(spec, oracle=DigestOracle(), via=via)
            out[via].append(time.perf_counter() - t)
            assert all(r.status is Status.OK for r in reps), (via, [r.failing for r in reps])
        out["http_cached"].append(timed(lambda: run_health(spec, oracle=oracle, via="http")))
    out["nats_kept"] = asyncio.run(kept_rounds())
    return out


def cli_runs(spec_path: Path, runs: int) -> dict[str, list[float]]:
    exe = str(Path(sys.executable).parent / "seedctl")
    out: dict[str, list[float]] = {"http": [], "nats": []}
    for _ in range(runs):
        for via in ("http", "nats"):
            cmd = [exe, "health", "--spec", str(spec_path), "--stateless", "-q", "--via", via]
            out[via].append(timed(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True)))
    return out


def reload_rounds(spec_path: Path, reloads: int) -> dict[str, list[float]]:
    data = yaml.safe_load(spec_path.read_text())
    out: dict[str, list[float]] = {"signal": [], "nats": []}
    n = 0
    for _ in range(reloads):
        for via in ("signal", "nats"):
            n += 1
            data["limits"] = {"max_connections": 10_000 + n}
            spec_path.write_text(yaml.safe_dump(data))
            spec = load_spec(spec_path)
            t = time.perf_counter()
            results = lifecycle.reload(spec, via=via)
            out[via].append(time.perf_counter() - t)
            assert all(r.changed for r in results), results
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--cli-runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="health-via-bench-") as tmp:
        with running_cluster(Path(tmp)) as (spec_path, spec):
            bcrypt_admin = health_rounds(spec, args.rounds)
            cli = cli_runs(spec_path, args.cli_runs)
            reload = reload_rounds(spec_path, args.reloads)
            # The admin as an nkey user: no bcrypt on the server at each connection.
            data = yaml.safe_load(spec_path.read_text())
            data["users"] = [{"name": "admin", "role": "admin", "auth": "nkey"},
                             {"name": "monitor", "role": "monitor"}, {"name": "observer", "role": "observer"}]  # fmt: skip
            spec_path.write_text(yaml.safe_dump(data))
            spec = load_spec(spec_path)
            lifecycle.reload(spec)
            nkey_admin = health_rounds(spec, args.rounds)
    print(f"3-node cluster, 13 checks per server; {args.rounds} alternating rounds per figure")
    for label, r in (("admin bcrypt (default)", bcrypt_admin), ("admin nkey", nkey_admin)):
        h, n = med(r["http"]), med(r["nats"])
        hc, nk = med(r["http_cached"]), med(r["nats_kept"])
        print(
            f"[{label}] CLI-style run (fresh drift oracle): http {h:7.1f} ms  nats {n:7.1f} ms  ratio {n / h:.2f}x"
        )
        print(
            f"[{label}] console round (cached digests):    http {hc:7.1f} ms  nats {nk:7.1f} ms  ratio {nk / hc:.2f}x (nats connection kept)"
        )
    h, n = med(cli["http"]), med(cli["nats"])
    print(
        f"seedctl health process ({args.cli_runs} runs each): http {h:7.1f} ms  nats {n:7.1f} ms  ratio {n / h:.2f}x"
    )
    s, n = med(reload["signal"]), med(reload["nats"])
    print(
        f"reload of 3 servers to proven digest ({args.reloads} each): SIGHUP {s:7.1f} ms  nats {n:7.1f} ms  ratio {n / s:.2f}x"
    )


if __name__ == "__main__":
    main()
