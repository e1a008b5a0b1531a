"""`seedctl users rotate|remove|add`: the documented rotation as written (docs/operations.md §10).

A rotated user keeps its auth kind (nkey stays nkey), both users work on a real seed during the
hand-over, and a removed user's secret never comes back with a later user of that name.
"""

from __future__ import annotations

import asyncio
import json

import nats
import yaml
from click.testing import CliRunner

from seed import users
from seed.cli import cli
from seed.spec import load_spec
from tests.plugins.seed import build_spec_data, make_seed
from tests.plugins.tools import free_port

NODE = "node-0123456789"


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env={"SEEDCTL_SPEC": None})


async def _connects(url: str, seed_file) -> bool:
    try:
        nc = await nats.connect(url, nkeys_seed=str(seed_file), connect_timeout=3, allow_reconnect=False)
    except Exception:
        return False
    await nc.close()
    return True


def test_rotating_the_shared_nkey_monitor_as_documented(tmp_path, nats_server_bin, _seed_secret_cache):
    users = [{"name": "admin", "role": "admin"}, {"name": "monitor", "role": "monitor", "auth": "nkey"}]
    seed = make_seed(tmp_path / "seed", nats_server_bin, _seed_secret_cache, free_port, users=users)
    try:
        _rotate_monitor(seed, tmp_path)
    finally:
        seed.stop()


def _rotate_monitor(seed, tmp_path):
    spec = str(seed.spec_path)
    old_seed = users.nkey_seed(seed.secrets_dir, "monitor", create=False)

    # the by-hand steps, as docs/operations.md §10 lists them
    r = _invoke("users", "rotate", "monitor", "--new-user", "monitor-2", "--spec", spec)
    assert r.exit_code == 0, r.output
    assert "monitor-2: monitor, nkey (like monitor)" in r.output
    rows = {u["name"]: u for u in json.loads(_invoke("users", "list", "--json", "--spec", spec).output)}
    assert rows["monitor-2"]["auth"] == "nkey" and rows["monitor-2"]["role"] == "monitor"
    seed.reload()
    out = tmp_path / "out"
    assert _invoke("users", "credentials", "monitor-2", "--out", str(out), "--spec", spec).exit_code == 0
    (tmp_path / "old.nk").write_text(old_seed + "\n")
    assert asyncio.run(_connects(seed.url, out / "monitor-2.nk")), "the new user works"
    assert asyncio.run(_connects(seed.url, tmp_path / "old.nk")), "the old one too, during the hand-over"

    refused = _invoke("users", "remove", "monitor", "--spec", spec)
    assert refused.exit_code == 2 and "delete its entry" in refused.output and "again" in refused.output
    seed.rewrite(users=[{"name": "admin", "role": "admin"}])  # the operator deletes it from the spec
    findings = _invoke("check", "--spec", spec, "--json")
    assert "seedctl users remove monitor" in findings.output, "a stray secret is reported"
    r = _invoke("users", "remove", "monitor", "--spec", spec)
    assert r.exit_code == 0, r.output
    assert not (seed.secrets_dir / "monitor.nk").exists() and not (seed.secrets_dir / "monitor.pub").exists()
    seed.reload()
    assert not asyncio.run(_connects(seed.url, tmp_path / "old.nk")), "the old user is cut off"
    assert asyncio.run(_connects(seed.url, out / "monitor-2.nk"))


def test_a_removed_users_secret_never_comes_back(tmp_path, _seed_secret_cache):
    data = build_spec_data(free_port, users=[{"name": "admin", "role": "admin"}])
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(path)
    # a secret left behind by a spec user that was deleted from the spec
    (spec.secrets_dir).mkdir(parents=True, exist_ok=True)
    stale = users.nkey_seed(spec.secrets_dir, "monitor")
    r = _invoke("users", "add", "monitor", "--role", "monitor", "--auth", "nkey", "--spec", str(path))
    assert r.exit_code == 0, r.output
    assert "nkey generated" in r.output
    assert users.nkey_seed(spec.secrets_dir, "monitor", create=False) != stale


def test_rotating_an_enrolled_node_in_place_keeps_its_auth_kind(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(build_spec_data(free_port, users=[]), sort_keys=False))
    assert _invoke("users", "add", NODE, "--auth", "nkey", "--spec", str(path)).exit_code == 0
    spec = load_spec(path)
    before = users.nkey_seed(spec.secrets_dir, NODE, create=False)
    r = _invoke("users", "rotate", NODE, "--spec", str(path))
    assert r.exit_code == 0, r.output
    assert users.nkey_seed(spec.secrets_dir, NODE, create=False) != before
    assert users.registered_auth(spec.secrets_dir)[NODE] == "nkey"
    assert not (spec.secrets_dir / f"{NODE}.password").exists()
    refused = _invoke("users", "add", "monitor-2", "--spec", str(path))
    assert refused.exit_code == 2 and "seedctl users rotate OLD --new-user monitor-2" in refused.output


def test_outside_the_repository_a_missing_spec_names_the_way_out(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "SEEDCTL_SPEC"}
    seedctl = str(Path(sys.executable).parent / "seedctl")
    r = subprocess.run([seedctl, "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "spec file not found" in r.stderr and "--spec" in r.stderr and "SEEDCTL_SPEC" in r.stderr


def test_an_observers_env_file_turns_sharing_off(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(
        yaml.safe_dump(build_spec_data(free_port, users=[{"name": "observer", "role": "observer"}]))
    )
    out = tmp_path / "out"
    r = _invoke("users", "credentials", "observer", "--out", str(out), "--spec", str(path))
    assert r.exit_code == 0, r.output
    text = (out / "observer.env").read_text()
    assert "FEDERATION_BROADCAST_TASKS=false" in text and "FEDERATION_BROADCAST_STATS=false" in text
    assert "to share" not in text and str(tmp_path) not in text  # nothing of this machine travels
