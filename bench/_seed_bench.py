"""Shared bench helpers for seedctl benches: a 3-node cluster spec on free loopback ports."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml


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
