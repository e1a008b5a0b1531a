"""Helpers of the enrollment tests (not a fixture plugin): operator-mode seeds, node keys, requests.

start_operator_seed(root, binary, servers=1, **spec) -> SeedHandle   (auth.mode operator, started)
make_node(root) -> Node          a node's DATA_DIR with its Ed25519 key (monitor_agent.identity)
Node.request(out=None) -> Path   `monitor-agent enroll-request` (same code) written to a file
seedctl(*args) -> CompletedProcess   the seedctl CLI in-process
jwt_connect(url, jwt, node, **kw)    a raw nats-py client presenting a user JWT + the node's key
varz(seed) -> dict
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nats
import yaml
from click.testing import CliRunner

from monitor_agent.enrollment import build_request, dumps
from monitor_agent.identity import Identity, load_identity
from monitor_agent.protocol import node_inbox_prefix
from seed.cli import cli
from seed.spec import load_spec
from tests.plugins.seed import SeedHandle, build_spec_data
from tests.plugins.tools import http_get, unique_ports


def start_operator_seed(
    root: Path, binary: str, *, servers: int = 1, start: bool = True, **spec
) -> SeedHandle:
    data = build_spec_data(unique_ports(), servers=servers, users=None, auth={"mode": "operator"}, **spec)
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "seed.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_spec(spec_path)
    handle = SeedHandle(spec_path, loaded, loaded.secrets_dir, loaded.state_dir, binary, data)
    if start:
        handle.start()
    return handle


@dataclass
class Node:
    data_dir: Path
    identity: Identity

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def request(self, out: Path | None = None, region: str = "EU-WEST") -> Path:
        out = out or (self.data_dir.parent / f"{self.node_id}.request.json")
        out.write_text(dumps(build_request(self.identity, region)))
        return out

    def sign(self, nonce: str) -> bytes:
        return base64.b64encode(self.identity.sign_raw(nonce.encode()))


def make_node(root: Path) -> Node:
    data_dir = root / "data"
    return Node(data_dir, load_identity(data_dir))


def seedctl(*args: str) -> subprocess.CompletedProcess:
    res = CliRunner().invoke(cli, [str(a) for a in args], env={"SEEDCTL_SPEC": None})
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


async def jwt_connect(url: str, jwt: str, node: Node, **kw) -> nats.NATS:
    kw.setdefault("allow_reconnect", False)
    kw.setdefault("connect_timeout", 5)
    return await nats.connect(
        url,
        user_jwt_cb=lambda: bytearray(jwt.encode()),
        signature_cb=node.sign,
        inbox_prefix=node_inbox_prefix(node.node_id),
        **kw,
    )


def varz(seed: SeedHandle, index: int = 0) -> dict:
    return http_get(f"{seed.monitor_urls[index]}/varz", timeout=5).json()


def issued_jwt(path: Path) -> str:
    """The token in a file `seedctl enroll approve` wrote."""
    return next(ln for ln in path.read_text().splitlines() if ln.startswith("eyJ"))
