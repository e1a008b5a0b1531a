"""Static quality of seed/ansible/: ansible-lint's production profile, and unit files that systemd
itself accepts (`systemd-analyze verify` on the units the roles render)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seed import deploy
from tests.plugins.tools import require_tool

pytestmark = [pytest.mark.ansible]

BIN = Path(sys.executable).parent


def test_ansible_lint_production_profile_passes():
    lint = require_tool("ansible-lint", str(BIN / "ansible-lint"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [lint, "--profile", "production", "--offline", "--nocolor", "."],
        cwd=deploy.ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "production" in proc.stdout + proc.stderr


def test_rendered_units_pass_systemd_analyze_verify(tmp_path, nats_server_bin):
    analyze = require_tool("systemd-analyze")
    (tmp_path / "roles").symlink_to(deploy.ANSIBLE_DIR / "roles")
    (tmp_path / "units.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the unit files only",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.include_role": {"name": role, "tasks_from": "unit"}}
                        for role in ("nats_seed", "monitor_agent")
                    ],
                }
            ]
        )
    )
    units = tmp_path / "units"
    units.mkdir()
    inventory = tmp_path / "inventory.yml"
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nats_seed_systemd_unit_dir": str(units),
        "nats_seed_bin": nats_server_bin,
        "nats_seed_prefix": str(tmp_path / "root"),
        "monitor_agent_systemd_unit_dir": str(units),
        "monitor_agent_bin": str(BIN / "monitor-agent"),
        "monitor_agent_prefix": str(tmp_path / "root"),
    }
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"unit-host": host_vars}}}))
    lines: list[str] = []
    result = deploy.run_playbook("units.yml", inventory, {}, out=lines.append, ansible_dir=tmp_path)
    assert result.ok, "\n".join(lines)

    rendered = sorted(units.glob("*.service"))
    assert [p.name for p in rendered] == ["monitor-agent.service", "nats-seed.service"]
    seed_unit = (units / "nats-seed.service").read_text()
    assert "ExecReload=/bin/kill -s HUP $MAINPID" in seed_unit
    assert "kill -s USR2" in seed_unit and "TimeoutStopSec=60" in seed_unit  # > 30 s lame duck
    assert "LimitNOFILE=" in seed_unit
    for unit in rendered:
        proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{unit.name}: {proc.stderr}"
        assert unit.name not in proc.stderr, proc.stderr  # no warning about our unit either

    # the check has teeth: a broken copy is refused
    broken = units / "broken.service"
    broken.write_text(seed_unit.replace(f"ExecStart={nats_server_bin}", "ExecStart=nats-server-relative"))
    proc = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


@pytest.mark.parametrize("role", ["nats_seed", "monitor_agent"])
def test_every_default_is_documented_in_the_role_readme(role):
    role_dir = deploy.ANSIBLE_DIR / "roles" / role
    defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text())
    readme = (role_dir / "README.md").read_text()
    missing = [name for name in defaults if f"| `{name}` |" not in readme]
    assert not missing, f"{role}/README.md does not list: {missing}"
    # and each has a comment right above it in defaults/main.yml
    lines = (role_dir / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split(":")[0] in defaults and not line.startswith(" "):
            assert lines[i - 1].startswith("#"), f"{role}: {line.split(':')[0]} has no comment"
