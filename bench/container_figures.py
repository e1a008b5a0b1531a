"""The agent image with podman: its size, build time from a warm base, container start until
/api/health answers, and `monitor-agent run` RSS inside the container vs outside it (the very
same files: the image's /opt/monitor-agent venv copied out and run by the host's Debian python3).

    CONTAINERS_CONF=tests/containers/containers.conf .venv/bin/python bench/container_figures.py [--builds 2] [--starts 5]

The base (localhost/debian:bookworm-slim) is built by debootstrap if missing and not timed;
each timed build is `--no-cache` on that warm base (apt + pip from the package registries).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.plugins.containers import (  # noqa: E402
    BASE_IMAGE,
    HOST_CA,
    ROOT,
    Podman,
    build_base_image,
)

TAG = "localhost/truebit-monitor-agent:bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def wait_healthy(port: int, timeout: float = 120) -> float:
    t0 = time.perf_counter()
    while not healthy(port):
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"no /api/health on {port} after {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - t0


def tree_rss(pid: int) -> float:
    """Summed RSS (MB) of a process and its children (one process since issue 15)."""
    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return sum(x.memory_info().rss for x in procs) / 1e6


def settle_rss(pid: int, seconds: float = 8.0) -> float:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(tree_rss(pid))
        time.sleep(0.5)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=2)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    podman = Podman(shutil.which("podman") or "podman", f"bench-{uuid.uuid4().hex[:6]}")
    out: dict = {}
    try:
        build_base_image(podman)
        builds = []
        for _ in range(args.builds):
            extra = ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--env", "PIP_CERT=/run/host-ca.crt"]
            t0 = time.perf_counter()
            podman("build", "--no-cache", "--format", "docker", "--build-arg", f"BASE={BASE_IMAGE}",
                   "-t", TAG, *extra, str(ROOT), timeout=1800)  # fmt: skip
            builds.append(time.perf_counter() - t0)
        out["build_s"] = builds
        info = json.loads(podman("image", "inspect", TAG).stdout)[0]
        out["image_mb"] = info["Size"] / 1e6
        out["base_mb"] = json.loads(podman("image", "inspect", BASE_IMAGE).stdout)[0]["Size"] / 1e6

        env = ["-e", "NODE_LOG_SOURCE=none", "-e", "MONITOR_HOST=127.0.0.1"]
        starts, inside = [], []
        for i in range(args.starts):
            port = free_port()
            name = f"tb-bench-{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            podman.run(TAG, name=name, options=(
                "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--network", "host",
                "-e", f"MONITOR_PORT={port}", *env,
            ))  # fmt: skip
            wait_healthy(port)
            starts.append(time.perf_counter() - t0)
            if i == 0:
                pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
                inside.append(settle_rss(pid))
            podman("rm", "-f", "-v", "-t", "5", name)
        out["start_to_health_s"] = starts
        out["rss_inside_mb"] = inside[0]

        # Outside: the image's own venv, copied out, run by the host's /usr/bin/python3.
        with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
            cid = podman("create", TAG).stdout.strip()
            podman("cp", f"{cid}:/opt/monitor-agent", tmp)
            podman("rm", cid)
            venv = Path(tmp) / "monitor-agent"
            port = free_port()
            data = Path(tmp) / "data"
            data.mkdir()
            child_env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "DATA_DIR": str(data), "MONITOR_PORT": str(port),
                         "NODE_LOG_SOURCE": "none", "MONITOR_HOST": "127.0.0.1", "HOME": tmp,
                         "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
            proc = subprocess.Popen([str(venv / "bin" / "python"), "-m", "monitor_agent.cli", "run"],
                                    env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                wait_healthy(port)
                out["rss_outside_mb"] = settle_rss(proc.pid)
            finally:
                proc.terminate()
                proc.wait(20)
    finally:
        podman.clean()
        podman("rmi", "-f", TAG, check=False)
    out["load_avg_1m"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    med = statistics.median
    print(f"image {out['image_mb']:.0f} MB (base {out['base_mb']:.0f} MB); build from warm base "
          f"{med(out['build_s']):.0f} s median of {len(out['build_s'])}; "
          f"start -> /api/health {med(starts):.2f} s median of {len(starts)} (max {max(starts):.2f}); "
          f"RSS inside {out['rss_inside_mb']:.1f} MB vs outside {out['rss_outside_mb']:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
