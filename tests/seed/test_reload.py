"""`seedctl reload`: user changes apply live and are proven by /varz config_digest; listen changes are refused."""

from __future__ import annotations

import asyncio
import copy

import nats
import pytest
from click.testing import CliRunner

from seed import lifecycle, natsbin
from seed.cli import cli
from tests.plugins.tools import http_get

NEW_NODE = "node-cccccccccc"


async def _can_connect(url: str) -> bool:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
    except Exception:
        return False
    await nc.close()
    return True


def _digest(handle) -> str:
    return http_get(f"{handle.monitor_urls[0]}/varz", timeout=3).json()["config_digest"]


def test_added_user_connects_after_reload_and_digest_is_verified(seed):
    runner = CliRunner()
    add = runner.invoke(cli, ["users", "add", NEW_NODE, "--spec", str(seed.spec_path)])
    assert add.exit_code == 0, add.output
    assert "enrolled" in add.output
    new_url = seed.url_for(NEW_NODE)
    assert not asyncio.run(_can_connect(new_url)), "user must not exist before the reload"
    pid, before = seed.pid(), _digest(seed)

    res = runner.invoke(cli, ["reload", "--spec", str(seed.spec_path), "--state-dir", str(seed.state_dir)])
    assert res.exit_code == 0, res.output
    assert "verified" in res.output

    after = _digest(seed)
    assert after != before
    live = lifecycle.conf_path(seed.spec, "seed-1", seed.state_dir)
    assert after == natsbin.validate(live, seed.binary)
    assert after in res.output
    assert seed.pid() == pid, "reload must not restart the server"
    assert asyncio.run(_can_connect(new_url))

    # and removing it cuts it off again
    rm = runner.invoke(cli, ["users", "remove", NEW_NODE, "--spec", str(seed.spec_path)])
    assert rm.exit_code == 0, rm.output
    seed.reload()
    assert not asyncio.run(_can_connect(new_url))


def test_second_reload_without_change_is_a_no_op(seed):
    before = _digest(seed)
    [result] = seed.reload()
    assert result.changed is False and result.digest == before


def test_port_change_is_refused_as_restart_required_and_server_untouched(seed):
    live = lifecycle.conf_path(seed.spec, "seed-1", seed.state_dir)
    text, pid, digest = live.read_text(), seed.pid(), _digest(seed)
    servers = copy.deepcopy(seed.data["servers"])
    old_port = servers[0]["client_port"]
    servers[0]["client_port"] = old_port + 1 if old_port < 65535 else old_port - 1
    seed.rewrite(servers=servers)

    res = CliRunner().invoke(
        cli, ["reload", "--spec", str(seed.spec_path), "--state-dir", str(seed.state_dir)]
    )
    assert res.exit_code == 1
    assert "restart required: client listen" in res.output
    assert f"127.0.0.1:{old_port} -> 127.0.0.1:{servers[0]['client_port']}" in res.output

    assert live.read_text() == text
    assert not live.with_name(live.name + ".new").exists()
    assert seed.pid() == pid and _digest(seed) == digest
    with pytest.raises(lifecycle.RestartRequired):
        seed.reload()


def test_reload_via_nats_applies_a_new_user_and_proves_the_digest(seed):
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "add", NEW_NODE, "--spec", str(seed.spec_path)]).exit_code == 0
    pid, before = seed.pid(), _digest(seed)
    res = runner.invoke(
        cli, ["reload", "--spec", str(seed.spec_path), "--state-dir", str(seed.state_dir), "--via", "nats"]
    )
    assert res.exit_code == 0, res.output
    after = _digest(seed)
    assert after != before and f"seed-1: reloaded via nats, config_digest {after} verified" in res.output
    assert seed.pid() == pid
    assert asyncio.run(_can_connect(seed.url_for(NEW_NODE)))
    assert (
        "unchanged"
        in runner.invoke(
            cli,
            ["reload", "--spec", str(seed.spec_path), "--state-dir", str(seed.state_dir), "--via", "nats"],
        ).output
    )


def test_reload_via_nats_of_a_seed_whose_config_another_tool_placed(seed, tmp_path):
    """A seed on another host: seedctl has no pid for it; the config is already in place there."""
    from seed import render, secrets

    elsewhere = tmp_path / "no-local-state"
    live = lifecycle.conf_path(seed.spec, "seed-1", seed.state_dir)
    # The config is not in place yet: the digest cannot be proven, and seedctl says so.
    assert not lifecycle.running_pid(seed.spec, "seed-1", elsewhere)
    seed.rewrite(limits={**seed.data["limits"], "max_connections": 4321})
    with pytest.raises(lifecycle.LifecycleError, match="config_digest never became"):
        lifecycle.reload(seed.spec, None, elsewhere, seed.binary, timeout=2.0, via="nats")
    # Ansible (here: us) puts the rendered config in place; the reload over NATS applies it.
    secrets.write_private(live, render.render_server(seed.spec, seed.spec.servers[0]))
    [result] = lifecycle.reload(seed.spec, None, elsewhere, seed.binary, timeout=5.0, via="nats")
    assert result.changed and _digest(seed) == result.digest
    assert http_get(f"{seed.monitor_urls[0]}/varz", timeout=3).json()["max_connections"] == 4321


def test_reload_via_nats_names_a_broken_config_on_the_host(seed, tmp_path):
    from seed import render

    live = lifecycle.conf_path(seed.spec, "seed-1", seed.state_dir)
    seed.rewrite(limits={**seed.data["limits"], "max_connections": 4321})
    wanted = render.render_server(seed.spec, seed.spec.servers[0])
    live.write_text(wanted + "\nmax_payload: [1, 2]\n")  # what a bad hand edit on the host does
    before = _digest(seed)
    with pytest.raises(lifecycle.LifecycleError, match="seed-1: reload via nats not applied") as exc:
        lifecycle.reload(seed.spec, None, tmp_path / "remote", seed.binary, timeout=3.0, via="nats")
    assert "RELOAD: Parse error on line" in str(exc.value), str(exc.value)  # the server's own words
    assert _digest(seed) == before and seed.pid() is not None
