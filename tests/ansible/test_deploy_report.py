"""seed.deploy's pure parts: spec -> extra variables, and ansible-runner events -> terminal lines."""

from __future__ import annotations

from seed import deploy, lifecycle
from seed.render import render_server


def test_extravars_carry_the_render_context_peers_and_restart_facts(seed_factory):
    handle = seed_factory(servers=3, start=False)
    spec = handle.spec
    out = deploy.deploy_vars(spec)
    assert set(out["nats_seed_servers"]) == {"seed-1", "seed-2", "seed-3"}
    s1 = out["nats_seed_servers"]["seed-1"]
    assert s1["peers"] == ["seed-2", "seed-3"]
    assert s1["monitor_url"] == spec.server("seed-1").monitor_url
    assert s1["restart_facts"] == lifecycle.restart_facts(spec, spec.server("seed-1"))
    assert s1["context"]["server"] == {"name": "seed-1"}
    # the monitors get every seed URL and the monitor credentials, the seeds only hashes
    user, password = handle.credentials("monitor")
    assert out["monitor_agent_seed_urls"] == spec.client_urls
    assert out["monitor_agent_credentials"] == f"{user}:{password}"
    assert password not in str(out["nats_seed_servers"])
    assert "$2b$" in render_server(spec, spec.server("seed-1"))


def _ev(event, host="seed-1", task="Do it", **data):
    return {"event": event, "event_data": {"host": host, "task": task, "role": "nats_seed", **data}}


def test_reporter_prints_a_line_per_task_and_host_then_summary_and_failures():
    lines: list[str] = []
    r = deploy.Reporter(lines.append)
    r.event({"event": "playbook_on_play_start", "event_data": {"play": "Converge"}})
    r.event(_ev("runner_on_ok", res={"changed": True}))
    r.event(_ev("runner_on_ok", host="seed-2", res={"changed": False}))
    r.event(_ev("runner_on_skipped", host="seed-3"))
    r.event(
        _ev(
            "runner_on_failed",
            host="seed-3",
            task="Render",
            res={"msg": "failed to validate", "stderr": "bad"},
        )
    )
    r.event(
        {
            "event": "playbook_on_stats",
            "event_data": {
                "ok": {"seed-1": 3, "seed-2": 2},
                "changed": {"seed-1": 1},
                "failures": {"seed-3": 1},
            },
        }
    )
    r.result.rc = 2
    deploy.report(r.result, lines.append)
    text = "\n".join(lines)
    assert lines[0] == "PLAY Converge"
    assert "changed     seed-1" in text and "ok          seed-2" in text
    assert "seed-3        nats_seed : Do it" not in text  # skipped lines only with --show-skipped
    assert r.result.changed_tasks == [("seed-1", "nats_seed : Do it")]
    assert [(f.host, f.task, f.message) for f in r.result.failures] == [
        ("seed-3", "nats_seed : Render", "failed to validate | bad")
    ]
    assert "host seed-3, task 'nats_seed : Render':" in text
    table = [line for line in lines if line.startswith(("host ", "seed-"))]
    assert table[0].split() == ["host", "ok", "changed", "failed", "unreachable", "skipped"]
    assert table[1].split() == ["seed-1", "3", "1", "0", "0", "0"]
    assert table[3].split() == ["seed-3", "0", "0", "1", "0", "0"]


def test_runner_env_puts_this_venv_first_on_path():
    import sys
    from pathlib import Path

    env = deploy.runner_env()
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["ANSIBLE_GATHERING"] == "explicit" and env["ANSIBLE_PIPELINING"] == "True"


def test_a_broken_yaml_inventory_is_named_with_its_line_before_ansible_runs(tmp_path):
    import pytest

    bad = tmp_path / "inv.yml"
    bad.write_text("nats_seeds:\n  hosts:\n    seed-1: {ansible_host: [\n")
    with pytest.raises(deploy.DeployError) as exc:
        deploy.run_playbook("seed", bad, {}, out=lambda _line: None)
    assert str(bad) in str(exc.value) and "not valid YAML" in str(exc.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- seed-1\n")
    with pytest.raises(deploy.DeployError, match="mapping of groups"):
        deploy.run_playbook("seed", listed, {}, out=lambda _line: None)
    deploy.check_inventory(tmp_path)  # not a file: left to ansible


def test_ansible_tags_in_a_yaml_inventory_are_not_an_error(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "nats_seeds:\n  hosts:\n    seed-1:\n      secret: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"
        "          6162\n      raw: !unsafe '{{ not_templated }}'\n"
    )
    deploy.check_inventory(inv)  # no DeployError


def test_rotation_keeps_the_old_users_way_of_authenticating(seed_factory, tmp_path):
    """Rotating an nkey monitor gives the new user an nkey (not a password), and vice versa."""
    import shutil
    from pathlib import Path

    from seed.spec import load_spec

    example = tmp_path / "seed.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "configs" / "seed.example.yaml", example)
    nkey_spec = load_spec(example)
    assert next(u for u in nkey_spec.users if u.name == "monitor").auth == "nkey"
    for create in (False, True):
        out = deploy.rotation_vars(nkey_spec, "monitor", f"monitor-{int(create)}", 60, create=create)
        users = {u["name"]: u for u in out["nats_seed_servers_transition"]["seed-1"]["context"]["fed_users"]}
        new = users[f"monitor-{int(create)}"]
        assert new["auth"] == "nkey" and new["nkey"].startswith("U") and new["hash"] is None
        final = {u["name"] for u in out["nats_seed_servers"]["seed-1"]["context"]["fed_users"]}
        assert "monitor" not in final and f"monitor-{int(create)}" in final
    assert out["monitor_agent_credentials"].startswith("SU")  # the new monitor's nkey seed

    password_spec = seed_factory(start=False).spec
    out = deploy.rotation_vars(password_spec, "monitor", "monitor-2", 60, create=True)
    users = {u["name"]: u for u in out["nats_seed_servers_transition"]["seed-1"]["context"]["fed_users"]}
    assert users["monitor-2"]["auth"] == "password" and users["monitor-2"]["hash"].startswith("$2")
    assert out["monitor_agent_credentials"].startswith("monitor-2:")


def test_after_a_rotation_the_monitor_playbook_hands_out_the_new_users_credentials(seed_factory):
    """Rotation done and `monitor` dropped from the spec as seedctl says: a later `--playbook
    monitor` must give the agents the new user's credentials, not take theirs away."""
    handle = seed_factory(start=False)
    deploy.rotation_vars(handle.spec, "monitor", "monitor-2", 60, create=True)
    spec = handle.rewrite(users=[u for u in handle.data["users"] if u["name"] != "monitor"])
    deploy.finish_rotation(spec, "monitor")
    assert deploy.deploy_vars(spec)["monitor_agent_credentials"].startswith("monitor-2:")


def test_an_unreachable_host_is_one_line_with_the_ssh_error_not_the_known_hosts_chatter():
    lines: list[str] = []
    r = deploy.Reporter(lines.append)
    msg = (
        'Task failed: Data could not be sent to remote host "10.0.0.12". Make sure this host can be '
        "reached over ssh: Warning: Permanently added '10.0.0.12' (ED25519) to the list of known hosts.\r\n"
        "root@10.0.0.12: Permission denied (publickey).\r\n"
    )
    r.event(_ev("runner_on_unreachable", host="seed-2", res={"msg": msg, "unreachable": True}))
    assert len(lines) == 1
    assert "UNREACHABLE" in lines[0] and "seed-2" in lines[0]
    assert "root@10.0.0.12: Permission denied (publickey)." in lines[0]
    assert "Permanently added" not in lines[0]
    assert r.result.failures[0].host == "seed-2"
