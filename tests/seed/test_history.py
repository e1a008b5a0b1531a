"""Spec `history:` (issue 16): JetStream on the seeds only when asked for, with the spec's limits.

Parsing (typed, file:line errors), rendering (no `history` -> the config is what it was: no
JetStream anywhere), and a real nats-server where `seedctl`'s stream keeps task events only.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import nats
import pytest

from monitor_agent.protocol import history_read_permissions, history_stream
from seed import history, lifecycle, natsbin, render, users
from seed.spec import SpecError, load_spec
from tests.plugins.tools import http_get

BASE = """\
name: t
servers:
  - name: seed-1
    client_port: 14222
    monitor_port: 18222
users:
  - {name: admin, role: admin}
  - {name: monitor, role: monitor}
  - {name: observer, role: observer}
"""

CLUSTER = """\
name: t
servers:
  - {name: seed-1, client_port: 14222, cluster_port: 16222, monitor_port: 18222}
  - {name: seed-2, client_port: 14223, cluster_port: 16223, monitor_port: 18223}
  - {name: seed-3, client_port: 14224, cluster_port: 16224, monitor_port: 18224}
users:
  - {name: admin, role: admin}
  - {name: monitor, role: monitor}
history: {max_age: 24h, max_bytes: 1GiB, replicas: auto}
"""


def _spec(tmp_path, text):
    p = tmp_path / "seed.yaml"
    p.write_text(text)
    return load_spec(p)


def test_history_limits_and_auto_replicas(tmp_path):
    single = _spec(tmp_path, BASE + "history: {max_age: 24h, max_bytes: 1GiB, replicas: auto}\n")
    assert (single.history.max_age_s, single.history.max_bytes, single.history.replicas) == (86_400, 1 << 30, 1)
    assert _spec(tmp_path, CLUSTER).history.replicas == 3
    assert _spec(tmp_path, BASE).history is None


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ("history: {max_age: 24 hours}", "history.max_age", "not a duration"),
        ("history: {max_bytes: lots}", "history.max_bytes", "not a size"),
        ("history: {replicas: 3}", "history.replicas", "need as many servers"),
        ("history: {keep: forever}", "history.keep", "unknown key"),
    ],
)
def test_bad_history_is_refused_with_file_line_and_field(tmp_path, line, field, problem):
    with pytest.raises(SpecError) as err:
        _spec(tmp_path, BASE + line + "\n")
    text = str(err.value)
    assert f"seed.yaml:{BASE.count(chr(10)) + 1}" in text and field in text and problem in text


def _strip_history(text: str) -> str:
    """A history config minus what `history:` adds: must equal the config without it."""
    text = re.sub(r"\n# Spec `history:`.*?\n}\n", "", text, flags=re.S)
    text = text.replace("    jetstream: enabled\n", "")
    text = re.sub(r'      # history\n      \{user: "seedctl-history".*?\}\}\n', "", text, flags=re.S)
    text = re.sub(r', "\$JS\.[^"]*"', "", text)
    return text


def test_without_history_the_config_is_unchanged_and_has_no_jetstream(tmp_path, nats_server_bin):
    plain = _spec(tmp_path, BASE)
    hashes = users.all_hashes(plain)
    without = render.render_server(plain, plain.servers[0], hashes)
    assert "jetstream" not in without.lower() and "$JS" not in without and "seedctl-history" not in without
    with_history = _spec(tmp_path, BASE + "history: {max_age: 1h, max_bytes: 64MiB}\n")
    text = render.render_server(with_history, with_history.servers[0])
    assert "jetstream {" in text and "jetstream: enabled" in text
    assert f'store_dir: "{with_history.state_dir / "seed-1" / "jetstream"}"' in text
    # Observers only gain the read subjects (their publish deny-all becomes an allow-list of them).
    text = text.replace(
        'publish: { allow: ["' + '", "'.join(history_read_permissions(plain.subject_prefix)) + '"] }',
        'publish: { deny: [">"] }',
    )
    # ... and every federation user the `_INBOX.>` replies of those requests (PROTOCOL.md §1).
    text = text.replace('subscribe: { allow: ["tbfed.v1.>", "_INBOX.>"] }', 'subscribe: { allow: ["tbfed.v1.>"] }')
    assert _strip_history(text) == without
    written = render.render_all(with_history)
    assert natsbin.validate(written["seed-1"], nats_server_bin).startswith("sha256:")


def test_cluster_config_has_what_jetstream_clustering_needs(tmp_path, nats_server_bin):
    spec = _spec(tmp_path, CLUSTER)
    for server in spec.servers:
        text = render.render_server(spec, server)
        assert f'server_name: "{server.name}"' in text
        assert "cluster {" in text and 'name: "tbfed-seeds"' in text and "jetstream {" in text
        assert str(spec.state_dir / server.name / "jetstream") in text
    for path in render.render_all(spec).values():
        assert natsbin.validate(path, nats_server_bin).startswith("sha256:")


async def _publish_and_count(url: str, stream: str) -> tuple[int, list[str]]:
    nc = await nats.connect(url)
    try:
        await nc.publish("tbfed.v1.task.node-aaaaaaaaaa", b"{}")
        await nc.publish("tbfed.v1.stats.node-aaaaaaaaaa", b"{}")
        await nc.publish("tbfed.v1.presence.node-aaaaaaaaaa", b"{}")
        await nc.flush()
        await asyncio.sleep(0.3)
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return info.state.messages, info.config.subjects
    finally:
        await nc.close()


def test_seedctl_stream_keeps_task_events_only(seed_factory):
    s = seed_factory(history={"max_age": "1h", "max_bytes": "64MiB"})
    state = history.ensure_stream(s.spec, timeout=20)
    assert state.created and state.replicas == 1
    again = history.ensure_stream(s.spec, timeout=20)  # `seedctl reload` again: updated, not duplicated
    assert not again.created
    messages, subjects = asyncio.run(_publish_and_count(s.url_for("monitor"), history_stream()))
    assert subjects == ["tbfed.v1.task.>"] and messages == 1


def test_operator_mode_with_history_is_refused_at_validation_with_one_line_saying_why(tmp_path):
    """Operator mode's account JWTs carry no JetStream limits yet: `seedctl check` says so and what
    to do, before anything is rendered or started."""
    from click.testing import CliRunner

    from seed.cli import cli

    spec = tmp_path / "seed.yaml"
    spec.write_text(
        "name: t\nauth: {mode: operator}\nservers:\n  - {name: seed-1, client_port: 14222, monitor_port: 18222}\n"
        "history: {max_age: 24h, max_bytes: 1GiB}\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert "seed.yaml:5" in str(err.value) and "history" in str(err.value)
    result = CliRunner().invoke(cli, ["check", "--spec", str(spec)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "auth.mode operator" in lines[0] and "JetStream" in lines[0]
    assert "remove history:" in lines[0] and "auth.mode static" in lines[0]
    assert not (tmp_path / "rendered").exists()


def test_a_lower_store_limit_is_a_restart_a_higher_one_reloads(seed_factory):
    """nats-server refuses a lower JetStream store limit on reload (server/reload.go: "decreasing
    jetstream max memory and store"), so `seedctl reload` (and the role: the same rule) calls it
    a restart instead of sending a reload that would silently keep the old limit; a higher limit
    reloads."""
    s = seed_factory(history={"max_age": "1h", "max_bytes": "64MiB"})
    pid = s.pid()
    live = lifecycle.conf_path(s.spec, "seed-1", s.state_dir)
    varz = lambda: http_get(s.monitor_urls[0] + "/varz", timeout=3).json()  # noqa: E731
    before = varz()
    # The premise, on the real server: the lower limit sent by SIGHUP is refused, nothing changes.
    lower = {"max_age": "1h", "max_bytes": "32MiB"}
    original = live.read_text()
    live.write_text(render.render_server(s.rewrite(history=lower), s.spec.server("seed-1")))
    os.kill(pid, signal.SIGHUP)
    time.sleep(1)
    after = varz()
    assert (after["config_digest"], after["jetstream"]["config"]["max_storage"]) == (
        before["config_digest"], before["jetstream"]["config"]["max_storage"])
    live.write_text(original)
    # So seedctl says restart, and leaves the server alone.
    with pytest.raises(lifecycle.RestartRequired, match="jetstream max store"):
        s.reload()
    assert s.pid() == pid
    s.rewrite(history={"max_age": "1h", "max_bytes": "128MiB"})
    [result] = s.reload()
    assert result.changed and s.pid() == pid
    assert varz()["jetstream"]["config"]["max_storage"] > before["jetstream"]["config"]["max_storage"]
