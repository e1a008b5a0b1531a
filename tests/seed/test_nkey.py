"""NKEY users on the seed side: spec, secrets, render (`nats-server -t`), `seedctl users`, audit.

Connecting with those nkeys to a real seed is in tests/agent/test_nkey_auth.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat

import pytest
import yaml
from click.testing import CliRunner

from seed import natsbin, render, secrets, users
from seed.audit import audit
from seed.cli import cli
from seed.deploy import monitor_vars
from seed.spec import SpecError, load_spec
from tests.plugins.seed import build_spec_data
from tests.plugins.tools import free_port

NODE = "node-0123456789"


def _write_spec(tmp_path, secret_cache, users) -> str:
    data = build_spec_data(free_port, users=users)
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(secret_cache, tmp_path / "secrets", dirs_exist_ok=True)
    return str(path)


def _users(auth: str) -> list[dict]:
    return [
        {"name": "admin", "role": "admin"},
        {"name": "monitor", "role": "monitor", "auth": auth},
        {"name": "observer", "role": "observer"},
        {"name": NODE, "role": "enrolled", "auth": auth},
    ]


def _user_block(text: str, comment: str) -> str:
    """The rendered lines of the user after `# <comment>`, up to its closing `}}`."""
    start = text.index(f"# {comment}")
    return text[start : text.index("}}", start) + 2]


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env={"SEEDCTL_SPEC": None})


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        ({"name": "monitor", "role": "monitor", "auth": "token"}, "'token' is not one of password, nkey"),
        ({"name": "monitor", "role": "monitor", "auth": "nkey", "password": "x" * 30}, "no password"),
    ],
)
def test_spec_refuses_unknown_auth_and_an_nkey_user_with_a_password(tmp_path, user, problem):
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(build_spec_data(free_port, users=[user]), sort_keys=False))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.field == "users[0].auth" and problem in str(err.value)
    assert re.match(rf"{re.escape(str(path))}:\d+: users\[0\]\.auth: ", str(err.value))


def test_nkey_users_render_by_public_key_with_the_permissions_of_the_password_form(
    tmp_path, _seed_secret_cache, nats_server_bin
):
    (tmp_path / "pw").mkdir()
    (tmp_path / "nk").mkdir()
    pw_spec = load_spec(_write_spec(tmp_path / "pw", _seed_secret_cache, _users("password")))
    nk_spec = load_spec(_write_spec(tmp_path / "nk", _seed_secret_cache, _users("nkey")))
    pw_text = render.render_server(pw_spec, pw_spec.servers[0])
    nk_conf = render.render_all(nk_spec)[nk_spec.servers[0].name]
    nk_text = nk_conf.read_text()

    for role, name in (("monitor", "monitor"), ("enrolled", NODE)):
        seed = (nk_spec.secrets_dir / f"{name}.nk").read_text().strip()
        public = users.nkey_public_key(seed)
        assert seed.startswith("SU") and public.startswith("U")
        assert stat.S_IMODE((nk_spec.secrets_dir / f"{name}.nk").stat().st_mode) == 0o600
        nk_block = _user_block(nk_text, f"{role}, nkey of user {name}")
        pw_block = _user_block(pw_text, role if role == "monitor" else "enrolled")
        assert nk_block.splitlines()[1].strip().startswith(f'{{nkey: "{public}", permissions: {{')
        # Same permissions, line for line, whichever way the user authenticates.
        assert nk_block.splitlines()[2:] == pw_block.splitlines()[2:]
        assert seed not in nk_text  # the seed never reaches the server config
    assert natsbin.validate(nk_conf, nats_server_bin).startswith("sha256:")
    # Deterministic: the same seeds render the same bytes (stable config digest).
    assert render.render_server(nk_spec, nk_spec.servers[0]) == nk_text
    # Password users still render as before, next to nkey users.
    assert re.search(r'\{user: "observer", password: "\$2b\$11\$', nk_text)
    with pytest.raises(secrets.SecretError, match="authenticates with an nkey"):
        users.user_password(nk_spec, nk_spec.user("monitor"))
    # `seedctl deploy` hands the monitor_agent role the seed as the credentials file's content.
    assert monitor_vars(nk_spec)["monitor_agent_credentials"] == users.credentials_text(
        nk_spec, nk_spec.user("monitor")
    )
    assert monitor_vars(nk_spec)["monitor_agent_credentials"].startswith("SU")


def test_users_add_list_credentials_remove_for_an_nkey_user(tmp_path, _seed_secret_cache):
    spec_path = _write_spec(tmp_path, _seed_secret_cache, _users("password")[:3])
    spec = load_spec(spec_path)
    node = "node-abcdef0123"

    res = _invoke("users", "add", node, "--auth", "nkey", "--spec", spec_path)
    assert res.exit_code == 0, res.output
    seed_file = spec.secrets_dir / f"{node}.nk"
    seed = seed_file.read_text().strip()
    public = users.nkey_public_key(seed)
    assert f"{node}: enrolled, nkey generated in {seed_file} (public key {public})" in res.output
    assert seed not in res.output  # printed only with --show-password
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    # Adding again keeps the key; a password on an nkey user is refused.
    assert "nkey kept" in _invoke("users", "add", node, "--spec", spec_path).output
    assert seed_file.read_text().strip() == seed
    res = _invoke("users", "add", node, "--password-stdin", "--spec", spec_path)
    assert res.exit_code == 2 and "no password" in res.output

    res = _invoke("users", "list", "--json", "--spec", spec_path)
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows[node]["auth"] == "nkey" and rows[node]["nkey"] == public and "seed" not in rows[node]
    assert rows["monitor"]["auth"] == "password" and rows["monitor"]["password"] == "set"
    text = _invoke("users", "list", "--spec", spec_path).output
    assert re.search(rf"^{node}\s+enrolled\s+nkey\s+added\s+nkey {public}$", text, re.M)
    assert re.search(r"^monitor\s+monitor\s+password\s+spec\s+password set$", text, re.M)
    assert public in render.render_server(load_spec(spec_path), spec.servers[0])

    out = tmp_path / "out"
    res = _invoke("users", "credentials", node, "--out", str(out), "--spec", spec_path)
    assert res.exit_code == 0, res.output
    assert (out / f"{node}.nk").read_text() == seed + "\n"
    assert stat.S_IMODE((out / f"{node}.nk").stat().st_mode) == 0o600
    env = dict(line.split("=", 1) for line in (out / f"{node}.env").read_text().splitlines() if "=" in line)
    assert env["FEDERATION_CREDENTIALS"] == f"{node}.nk"  # relative to the env file
    assert "FEDERATION_NODE_ID" not in env and seed not in (out / f"{node}.env").read_text()

    assert _invoke("users", "remove", node, "--spec", spec_path).exit_code == 0
    assert not seed_file.exists() and not (spec.secrets_dir / f"{node}.pub").exists()
    assert node not in render.render_server(load_spec(spec_path), spec.servers[0])


def test_audit_keeps_working_with_nkey_users(tmp_path, _seed_secret_cache):
    spec = load_spec(_write_spec(tmp_path, _seed_secret_cache, _users("nkey")))
    rendered = {s.name: render.render_server(spec, s) for s in spec.servers}
    assert audit(spec, rendered) == []
    os.chmod(spec.secrets_dir / "monitor.nk", 0o644)
    findings = audit(spec, rendered)
    assert [(f.severity, f.where) for f in findings] == [("high", str(spec.secrets_dir / "monitor.nk"))]


def test_a_damaged_seed_file_is_refused_without_quoting_it(tmp_path, _seed_secret_cache):
    spec = load_spec(_write_spec(tmp_path, _seed_secret_cache, _users("nkey")))
    seed = users.nkey_seed(spec.secrets_dir, "monitor")
    broken = seed[:20] + ("A" if seed[20] != "A" else "B") + seed[21:]
    (spec.secrets_dir / "monitor.nk").write_text(broken + "\n")
    with pytest.raises(secrets.SecretError) as err:
        render.render_server(spec, spec.servers[0])
    assert "monitor.nk" in str(err.value) and "checksum" in str(err.value)
    assert broken not in str(err.value)
