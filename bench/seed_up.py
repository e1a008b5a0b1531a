"""Benchmark: time of `seedctl up` until the seed answers /healthz ok (median of N runs).

Measures, on loopback with fresh ports each run:
  cli      `seedctl up` as a user runs it (subprocess: Python start, spec, render, -t, start, /healthz)
  inproc   seed.lifecycle.up() in this process (no interpreter start)
  bare     baseline: nats-server started directly on the same config, polled until /healthz ok
Secrets are generated once before timing (first-ever render adds bcrypt, ~0.15 s per user).

    /work/venv/bin/python bench/seed_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seed import lifecycle, natsbin, render, users  # noqa: E402
from seed.spec import load_spec  # noqa: E402
from seed.supervisor import Child  # noqa: E402

SEEDCTL = str(Path(sys.executable).parent / "seedctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_spec(root: Path) -> Path:
    spec = {
        "name": "bench",
        "servers": [{"name": "seed-1", "client_port": free_port(), "monitor_port": free_port()}],
        "secrets_dir": str(root.parent / "secrets"),
        "state_dir": "state",
    }
    path = root / "seed.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def wait_healthz(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"{url} never healthy")


def run_cli(root: Path) -> float:
    spec = write_spec(root)
    t0 = time.perf_counter()
    subprocess.run([SEEDCTL, "up", "--spec", str(spec)], check=True, capture_output=True)
    took = time.perf_counter() - t0
    subprocess.run([SEEDCTL, "down", "--now", "--spec", str(spec)], check=True, capture_output=True)
    return took


def run_inproc(root: Path) -> float:
    spec = load_spec(write_spec(root))
    t0 = time.perf_counter()
    lifecycle.up(spec)
    took = time.perf_counter() - t0
    lifecycle.down(spec, lame_duck=False, timeout=5)
    return took


def run_bare(root: Path) -> float:
    spec = load_spec(write_spec(root))
    [conf] = render.render_all(spec, root / "bare").values()
    t0 = time.perf_counter()
    with Child("nats-server", [natsbin.find_binary(), "-c", str(conf)], root / "bare.log"):
        wait_healthz(spec.servers[0].monitor_url)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-seed-up-") as tmp:
        base = Path(tmp)
        results: dict[str, list[float]] = {"cli": [], "inproc": [], "bare": []}
        users.all_hashes(load_spec(write_spec(Path(tempfile.mkdtemp(dir=base)))))  # secrets + hashes once
        for i in range(args.runs):
            for kind, fn in (("bare", run_bare), ("inproc", run_inproc), ("cli", run_cli)):
                root = base / f"{kind}-{i}"
                root.mkdir()
                results[kind].append(fn(root))
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"nats-server {natsbin.version()}, {args.runs} runs each, median (min..max):")
        for kind in ("bare", "inproc", "cli"):
            v = results[kind]
            ratio = med[kind] / med["bare"]
            print(
                f"  {kind:<7} {med[kind] * 1000:7.1f} ms  ({min(v) * 1000:.1f}..{max(v) * 1000:.1f})  {ratio:4.1f}x bare"
            )


if __name__ == "__main__":
    main()
