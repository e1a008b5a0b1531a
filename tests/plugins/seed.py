"""Seed fixtures (owned by the seed control plane work): real nats-server via seedctl's own code.

    seed_factory -> make(*, servers=1, tls=None, max_connections=None, enrolled=(), start=True,
                         **spec_overrides) -> SeedHandle
        tls: None or {"cert": path, "key": path, "ca": path-or-None}; "ca" is the *client* CA:
             set it and clients must present a certificate it signed (mutual TLS).
        enrolled: node ids that get their own users (publish only tbfed.v1.*.<nodeId>)
        spec_overrides: top-level spec keys replaced as given (e.g. limits={...}, users=[...])
    seed -> a started single-server SeedHandle
    make_seed(root, binary, secret_cache, ports=None, *, start=True, **spec) -> SeedHandle
        the same without the fixture: a seed whose teardown the caller owns (module fixtures)

Every server is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from seed import lifecycle, secrets
from seed.spec import Spec, load_spec
from seed.users import HISTORY_MANAGER, effective_users, user_password
from tests.plugins.tools import unique_ports


@dataclass
class SeedHandle:
    spec_path: Path
    spec: Spec
    secrets_dir: Path
    state_dir: Path
    binary: str
    data: dict = field(repr=False, default_factory=dict)

    @property
    def names(self) -> list[str]:
        return self.spec.names

    @property
    def client_urls(self) -> list[str]:
        return [s.client_url for s in self.spec.servers]

    @property
    def url(self) -> str:
        return self.client_urls[0]

    @property
    def monitor_urls(self) -> list[str]:
        return [s.monitor_url for s in self.spec.servers]

    def credentials(self, user: str) -> tuple[str, str]:
        """(username, password) of a spec user: "monitor", "observer", "admin" or an enrolled node id."""
        for u in effective_users(self.spec):
            if u.name == user:
                return user, user_password(self.spec, u, create=False)
        raise KeyError(f"no user {user!r} in {self.spec_path}")

    def url_for(self, user: str, index: int = 0) -> str:
        name, password = self.credentials(user)
        server = self.spec.servers[index]
        return f"nats://{name}:{password}@{server.client_host}:{server.client_port}"

    def rewrite(self, **changes) -> Spec:
        """Change top-level spec keys on disk and reload the Spec (not the servers: call .reload())."""
        self.data.update(changes)
        self.spec_path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        self.spec = load_spec(self.spec_path)
        return self.spec

    def start(self, name: str | None = None) -> None:
        lifecycle.up(self.spec, [name] if name else None, self.state_dir, self.binary)

    def stop(self, name: str | None = None) -> None:
        lifecycle.down(self.spec, [name] if name else None, self.state_dir, timeout=5.0, lame_duck=False)

    def reload(self) -> list[lifecycle.ReloadResult]:
        return lifecycle.reload(self.spec, None, self.state_dir, self.binary)

    def pid(self, name: str | None = None) -> int | None:
        return lifecycle.running_pid(self.spec, name or self.names[0], self.state_dir)


def build_spec_data(
    ports, *, servers: int = 1, tls=None, max_connections=None, enrolled=(), **overrides
) -> dict:
    """A spec (as YAML data) on loopback with fresh ports."""
    entries = []
    for i in range(1, servers + 1):
        entry = {"name": f"seed-{i}", "host": "127.0.0.1", "client_port": ports()}
        if servers > 1:
            entry["cluster_port"] = ports()
        entry["monitor_host"] = "127.0.0.1"
        entry["monitor_port"] = ports()
        entries.append(entry)
    users = [{"name": "admin", "role": "admin"}, {"name": "monitor", "role": "monitor"}]
    users.append({"name": "observer", "role": "observer"})
    users += [{"name": node_id, "role": "enrolled"} for node_id in enrolled]
    data: dict = {"name": "tbfed-test", "servers": entries, "users": users}
    data["limits"] = {"lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1}
    if max_connections is not None:
        data["limits"]["max_connections"] = max_connections
    if tls:
        data["tls"] = {"cert": str(tls["cert"]), "key": str(tls["key"])}
        if tls.get("ca"):
            data["tls"]["client_ca"] = str(tls["ca"])
    data["secrets_dir"] = "secrets"
    data["state_dir"] = "state"
    data["rendered_dir"] = "rendered"
    data.update(overrides)
    return data


@pytest.fixture(scope="session")
def _seed_secret_cache(tmp_path_factory) -> Path:
    """Passwords + bcrypt hashes of the standard users, made once per session (bcrypt is slow by design)."""
    d = tmp_path_factory.mktemp("seed-secrets")
    for name in ("admin", "monitor", "observer", HISTORY_MANAGER):  # the last: specs with `history:`
        secrets.bcrypt_hash(d, name)
    return d


def make_seed(
    root: Path, binary: str, secret_cache: Path, ports=None, *, start: bool = True, **spec
) -> SeedHandle:
    """A real seed (seedctl's own spec/render/lifecycle code) in `root` from build_spec_data(**spec):
    the session's cached passwords copied in, every password user's credentials made before the
    first start (nkey users get theirs when the config is rendered)."""
    root.mkdir(parents=True, exist_ok=True)
    data = build_spec_data(ports or unique_ports(), **spec)
    spec_path = root / "seed.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_spec(spec_path)
    handle = SeedHandle(spec_path, loaded, loaded.secrets_dir, loaded.state_dir, binary, data)
    shutil.copytree(secret_cache, loaded.secrets_dir, dirs_exist_ok=True)
    for user in effective_users(loaded):
        if user.auth == "password":
            user_password(loaded, user)
    if start:
        handle.start()
    return handle


@pytest.fixture
def seed_factory(tmp_path_factory, port_factory, nats_server_bin, _seed_secret_cache):
    """Make real nats-server seeds from a generated spec; all are stopped at teardown."""
    handles: list[SeedHandle] = []

    def make(*, servers=1, tls=None, max_connections=None, enrolled=(), start=True, **spec_overrides):
        handle = make_seed(
            tmp_path_factory.mktemp("seed"), nats_server_bin, _seed_secret_cache, port_factory, start=False,
            servers=servers, tls=tls, max_connections=max_connections, enrolled=enrolled, **spec_overrides,
        )  # fmt: skip
        handles.append(handle)
        if start:
            handle.start()
        return handle

    yield make
    for handle in handles:
        with contextlib.suppress(Exception):
            lifecycle.down(handle.spec, None, handle.state_dir, timeout=5.0, lame_duck=False)


@pytest.fixture
def seed(seed_factory) -> SeedHandle:
    """A started single-server seed on loopback (users admin, monitor, observer)."""
    return seed_factory()
