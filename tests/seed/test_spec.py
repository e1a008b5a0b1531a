"""Spec loading and validation: every refusal names file, line and field; render is valid and stable."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from monitor_agent.protocol import node_publish_permission, subscribe_subject
from seed import natsbin, render, secrets, users
from seed.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "configs" / "seed.example.yaml",
    ROOT / "configs" / "seed.cluster.example.yaml",
    ROOT / "configs" / "seed.operator.example.yaml",
]


def _copy_example(tmp_path: Path, example: Path) -> Path:
    """The example spec in a tmp dir, so secrets and rendered files land there."""
    dst = tmp_path / example.name
    shutil.copy(example, dst)
    return dst


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "seed.yaml"
    p.write_text(text)
    return p


BASE = """\
name: t
servers:
  - name: seed-1
    client_port: 14222
    monitor_port: 18222
"""


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_render_to_configs_nats_server_accepts(tmp_path, example, nats_server_bin):
    spec = load_spec(_copy_example(tmp_path, example))
    written = render.render_all(spec)
    assert set(written) == set(spec.names)
    for path in written.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert natsbin.validate(path, nats_server_bin).startswith("sha256:")


def test_render_is_deterministic_and_holds_only_bcrypt_hashes(tmp_path):
    spec = load_spec(_copy_example(tmp_path, EXAMPLES[0]))
    server = spec.servers[0]
    first = render.render_server(spec, server)
    assert render.render_server(load_spec(spec.path), server) == first
    for user in ("admin", "observer"):
        pw = secrets.password(spec.secrets_dir, user, create=False)
        assert len(pw) >= 24
        assert pw not in first
        assert stat.S_IMODE(secrets.password_path(spec.secrets_dir, user).stat().st_mode) == 0o600
    hashes = [ln for ln in first.splitlines() if "password:" in ln]
    assert len(hashes) == 2
    assert all('password: "$2b$11$' in ln for ln in hashes)
    # The shared monitor user authenticates with an nkey: only its public key is in the config.
    seed = users.nkey_seed(spec.secrets_dir, "monitor", create=False)
    assert seed not in first and f'{{nkey: "{users.nkey_public_key(seed)}"' in first


def test_permissions_follow_the_protocol_subjects(tmp_path):
    spec = load_spec(
        _write(
            tmp_path,
            BASE + "users:\n  - {name: node-a3f7c9d2e1, role: enrolled}\n"
            "  - {name: monitor, role: monitor}\n  - {name: observer, role: observer}\n",
        )
    )
    by_name = {u.name: users.permissions(u, spec.subject_prefix) for u in spec.users}
    fed = subscribe_subject()
    assert by_name["monitor"] == {"publish": {"allow": [fed]}, "subscribe": {"allow": [fed]}}
    assert by_name["node-a3f7c9d2e1"]["publish"] == {"allow": [node_publish_permission("node-a3f7c9d2e1")]}
    assert by_name["observer"]["publish"] == {"deny": [">"]}
    text = render.render_server(spec, spec.servers[0])
    assert '"tbfed.v1.*.node-a3f7c9d2e1"' in text
    assert "$SYS" not in text.split("system_account")[0].split("FED:")[1]


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        (BASE + "colour: blue\n", 6, "colour", "unknown key"),
        (
            BASE.replace("client_port: 14222", "client_port: '4222'"),
            4,
            "servers[0].client_port",
            "expected an integer",
        ),
        (
            BASE.replace("client_port: 14222", "client_port: 70000"),
            4,
            "servers[0].client_port",
            "out of range",
        ),
        (
            BASE.replace("monitor_port: 18222", "monitor_port: 14222"),
            5,
            "servers[0].monitor_port",
            "already used",
        ),
        (BASE + "tls:\n  cert: nope.pem\n  key: nope-key.pem\n", 7, "tls.cert", "file not found"),
        (BASE + "limits:\n  max_payload: lots\n", 7, "limits.max_payload", "expected an integer"),
        (BASE + "users:\n  - {name: bob, role: king}\n", 7, "users[0].role", "'king' is not one of"),
        (BASE + "users:\n  - {name: Bob!, role: enrolled}\n", 7, "users[0].name", "is not"),
        (
            BASE + "users:\n  - {name: monitor, role: monitor}\n  - {name: monitor, role: observer}\n",
            8,
            "users[1].name",
            "duplicate user",
        ),
        (
            BASE + "  - name: seed-2\n    client_port: 14223\n    monitor_port: 18223\n",
            3,
            "servers[0].cluster_port",
            "required when the spec has several servers",
        ),
        ("servers: [\n", 2, "", "YAML syntax error"),
        (BASE + "name: again\n", 6, "name", "duplicate key"),
    ],
)
def test_invalid_specs_are_refused_with_file_line_and_field(tmp_path, text, line, field, problem):
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert field in msg and problem in msg, msg
    assert "\n" not in msg


def test_duplicate_port_across_servers_names_both(tmp_path):
    data = yaml.safe_load(BASE)
    data["servers"][0]["cluster_port"] = 16222
    data["servers"].append(
        {"name": "seed-2", "client_port": 14222, "cluster_port": 16223, "monitor_port": 18223}
    )
    path = _write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(
        SpecError, match=r"servers\[1\]\.client_port: port 14222 on 127.0.0.1 is already used by seed-1"
    ):
        load_spec(path)


def _three_hosts(**over) -> str:
    servers = [
        {"name": f"seed-{i}", "host": f"10.77.0.{i}", "cluster_port": 6222, "monitor_port": 8222}
        for i in (1, 2, 3)
    ]
    for i, fields in over.items():
        servers[int(i[1:])].update(fields)
    return yaml.safe_dump({"name": "multi", "servers": servers}, sort_keys=False)


def test_servers_on_different_hosts_share_loopback_monitor_and_the_same_ports(tmp_path):
    # The multi-host layout: every seed keeps monitoring on its own 127.0.0.1:8222.
    spec = load_spec(_write(tmp_path, _three_hosts()))
    assert {s.monitor_url for s in spec.servers} == {"http://127.0.0.1:8222"}
    # A wildcard bind with a public_host is a machine of its own too.
    spec = load_spec(_write(tmp_path, _three_hosts(s1={"host": "0.0.0.0", "public_host": "seed-2.example"})))
    assert spec.servers[1].client_host == "seed-2.example"


@pytest.mark.parametrize(
    "over, field",
    [
        # Two servers that the spec places on one machine still clash on loopback...
        ({"s1": {"host": "0.0.0.0", "public_host": "10.77.0.1"}}, "servers[1].client_port"),
        # ...and a wildcard bind overlaps a specific address declared before it (was missed).
        ({"s0": {"host": "127.0.0.1"}, "s1": {"host": "0.0.0.0"}}, "servers[1].client_port"),
    ],
)
def test_servers_on_one_host_still_clash(tmp_path, over, field):
    with pytest.raises(SpecError, match=rf"{re.escape(field)}: port \d+ on .* is already used by seed-1"):
        load_spec(_write(tmp_path, _three_hosts(**over)))


@pytest.mark.parametrize(
    "cluster, field, problem",
    [
        ({"auth": "yes"}, "cluster.auth", "expected a mapping {user, password_file} or the word none"),
        ({"auth": {"user": "a b"}}, "cluster.auth.user", "is not a user name"),
        ({"auth": {"nkey": "U..."}}, "cluster.auth.nkey", "unknown key"),
        ({"tls": {"cert": "c.pem"}}, "cluster.tls.cert", "file not found"),
        ({"tls": {"verify": False}}, "cluster.tls.verify", "must be true"),
    ],
)
def test_cluster_auth_and_tls_mistakes_are_named(tmp_path, cluster, field, problem):
    path = _write(tmp_path, BASE + yaml.safe_dump({"cluster": {"name": "c", **cluster}}))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert field in str(exc.value) and problem in str(exc.value), str(exc.value)


def test_route_auth_is_on_by_default_and_rendered_into_authorization_and_every_route(tmp_path):
    spec = load_spec(_copy_example(tmp_path, EXAMPLES[1]))
    assert spec.route_auth is not None and spec.route_auth.user == "route"
    text = render.render_server(spec, spec.servers[0])
    pw = secrets.route_password(spec.secrets_dir, create=False)
    assert len(pw) >= 32
    assert f'authorization {{\n    user: "route"\n    password: "{pw}"' in text
    assert text.count(f"nats-route://route:{pw}@127.0.0.1:") == 2
    assert stat.S_IMODE((spec.secrets_dir / secrets.ROUTE_SECRET).stat().st_mode) == 0o600
    assert render.render_server(load_spec(spec.path), spec.servers[0]) == text  # stable


def test_spec_defaults_are_the_documented_ones(tmp_path):
    spec = load_spec(_write(tmp_path, BASE))
    assert spec.limits.max_payload == 8192
    assert spec.servers[0].monitor_host == "127.0.0.1"
    assert [u.role for u in spec.users] == ["admin", "monitor", "observer"]
    assert (
        spec.console.host,
        spec.console.port,
        spec.console.sample_interval_s,
        spec.console.history_days,
    ) == ("127.0.0.1", 8300, 10, 7)
    assert spec.secrets_dir == tmp_path / "secrets"


def test_invalid_rendered_config_raises_with_the_servers_own_words(tmp_path, nats_server_bin):
    bad = tmp_path / "bad.conf"
    bad.write_text("listen: 127.0.0.1:4222\nmax_payload: {\n")
    with pytest.raises(natsbin.NatsServerError, match="Parse error"):
        natsbin.validate(bad, nats_server_bin)


def test_bcrypt_hash_is_cached_until_the_password_changes(tmp_path):
    h1 = secrets.bcrypt_hash(tmp_path, "monitor")
    assert secrets.bcrypt_hash(tmp_path, "monitor") == h1
    assert int(h1.split("$")[2]) >= 11
    secrets.set_password(tmp_path, "monitor", "x" * 30)
    h2 = secrets.bcrypt_hash(tmp_path, "monitor")
    assert h2 != h1
    import bcrypt

    assert bcrypt.checkpw(b"x" * 30, h2.encode())


def test_documented_example_config_matches_the_template():
    """configs/nats-server.example.conf is the example spec rendered with placeholder hashes."""
    spec = load_spec(EXAMPLES[0])
    placeholder = {
        u.name: f"$2b$11$PLACEHOLDER-{u.name}-bcrypt-hash-written-by-seedctl-render"
        if u.auth == "password"
        else f"UPLACEHOLDER-{u.name}-public-nkey-written-by-seedctl-render"
        for u in spec.users
    }
    expected = render.render_server(spec, spec.servers[0], placeholder)
    assert (ROOT / "configs" / "nats-server.example.conf").read_text() == expected


def test_yaml_alias_cycles_and_alias_bombs_are_refused_quickly(tmp_path):
    """A hostile or broken spec must give one clear error, not a RecursionError or a hung CPU."""
    import time

    cyclic = _write(tmp_path, "name: x\nservers: &a [*a]\n")
    with pytest.raises(SpecError, match="cycle"):
        load_spec(cyclic)
    lines = ["name: x", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = _write(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(SpecError, match="expand to more than"):
        load_spec(bomb)
    assert time.monotonic() - started < 5


def test_plain_yaml_anchors_still_work(tmp_path):
    spec = _write(
        tmp_path,
        "name: x\nservers:\n  - &s {name: seed-1, host: 127.0.0.1, client_port: 4222, monitor_port: 8222}\n"
        "users:\n  - {name: monitor, role: monitor}\n",
    )
    assert load_spec(spec).servers[0].name == "seed-1"
