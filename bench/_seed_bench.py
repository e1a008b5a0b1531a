"""Shared bench helpers for seedctl benches: a 3-node cluster spec on free loopback ports, and
that cluster running (meshed: `seedctl health` topology OK) for the length of a `with`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from seed import lifecycle
from seed.health import DigestOracle, Status, run_health
from seed.spec import Spec, load_spec


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free right now (all bound at once so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_cluster_spec(folder: Path, nodes: int = 3) -> Path:
    """`folder/seed.yaml` for a cluster "bench" of `nodes` seeds (seed-1...) on free ports."""
    ports = free_ports(3 * nodes)
    servers = [
        {"name": f"seed-{i + 1}", "client_port": ports[3 * i], "cluster_port": ports[3 * i + 1],
         "monitor_port": ports[3 * i + 2]}
        for i in range(nodes)
    ]  # fmt: skip
    spec_path = Path(folder) / "seed.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "bench", "servers": servers}))
    return spec_path


@contextmanager
def running_cluster(folder: Path, nodes: int = 3, timeout: float = 20.0) -> Iterator[tuple[Path, Spec]]:
    """(spec path, spec) of a `write_cluster_spec` cluster, started and meshed; stopped at the end
    (with the spec as the file then says)."""
    spec_path = write_cluster_spec(folder, nodes)
    spec = load_spec(spec_path)
    lifecycle.up(spec)
    try:
        deadline = time.monotonic() + timeout
        while run_health(spec, oracle=DigestOracle())[0].check("topology").status is not Status.OK:
            if time.monotonic() > deadline:
                raise SystemExit("cluster did not form")
            time.sleep(0.2)
        yield spec_path, spec
    finally:
        lifecycle.down(load_spec(spec_path), timeout=5, lame_duck=False)
