"""The shipped local inventory (seed/ansible/inventory.local.yml) and a --check rotation that mints nothing.

docs/operations.md tells operators to try `seedctl deploy --check` with this inventory: it must
work as written on this machine (real ansible-runner, the venv's nats-server, no root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seed import deploy, natsbin
from seed.render import TEMPLATE, _env
from seed.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SEEDCTL = str(Path(sys.executable).parent / "seedctl")


def _spec_copy(tmp_path) -> Path:
    spec = tmp_path / "seed.yaml"
    shutil.copy(ROOT / "configs" / "seed.example.yaml", spec)
    return spec


def test_check_rotation_mints_no_secret_and_is_stable(tmp_path, nats_server_bin):
    spec = load_spec(_spec_copy(tmp_path))
    tmp_before = set(os.listdir("/tmp"))
    one = deploy.rotation_vars(spec, "monitor", "monitor-2", 60, create=False)
    two = deploy.rotation_vars(spec, "monitor", "monitor-2", 60, create=False)
    assert one == two, "--check shows the same diff every run"
    assert not [p.name for p in spec.secrets_dir.iterdir() if p.name.startswith("monitor-2")]
    assert "monitor-2" not in (spec.secrets_dir / "users.json").read_text() if (
        spec.secrets_dir / "users.json").exists() else True  # fmt: skip
    assert not [n for n in set(os.listdir("/tmp")) - tmp_before if n.startswith("seedctl-check-")]
    # the transition config with the placeholder is one nats-server accepts (what --check validates)
    ctx = one["nats_seed_servers_transition"]["seed-1"]["context"]
    conf = tmp_path / "transition.conf"
    conf.write_text(_env().get_template(TEMPLATE).render(**ctx))
    natsbin.validate(conf, nats_server_bin)


@pytest.mark.timeout(600)  # two converges of the role through ansible-runner
def test_the_shipped_local_inventory_checks_a_rotation_quickly_minting_nothing(tmp_path):
    spec = _spec_copy(tmp_path)
    inventory = tmp_path / "inventory.local.yml"
    shutil.copy(ROOT / "seed" / "ansible" / "inventory.local.yml", inventory)  # its local-hosts/ lands in tmp
    env = {k: v for k, v in os.environ.items() if k != "SEEDCTL_SPEC"}
    # (the seed playbook with this inventory runs as README.md and docs/operations.md say: tests/docs)
    r = subprocess.run(
        [SEEDCTL, "deploy", "--spec", str(spec), "-i", str(inventory), "--check", "--playbook",
         "rotate-credentials", "--new-user", "monitor-2", "--old-user", "monitor", "--grace-period", "120"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check mode: nothing changes" in r.stdout
    assert not (tmp_path / "local-hosts" / "seed-1" / "etc" / "nats-seed" / "nats-server.conf").exists()
    assert not (spec.parent / "secrets" / "monitor-2.nk").exists(), "--check minted no user"
