"""Operator mistakes and hostile neighbours, against the real processes (issue 18).

- an agent whose FEDERATION_NODE_ID looks derived but is not its key's id refuses to start
  (before: it looked CONNECTED while every receiver dropped all its messages);
- `seedctl users credentials` never pins a derived id the node's key cannot carry;
- credentials of an enrolled user used under another nodeId: the state is DEGRADED and the
  message names the NATS user, the refused subject and the fix (before: a green CONNECTED);
- a rejected user (FED_002) is named, with its credentials file;
- `clear-federation-data` never sends the API token to a program that is not the agent of its
  own DATA_DIR (before: it POSTed to whatever listened on MONITOR_PORT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor_agent import runfile
from monitor_agent.identity import load_identity
from monitor_agent.protocol import STATS_PRIVATE_BUCKET_S
from monitor_agent.store import Store
from tests.plugins.tools import QuietHandler, http_server, wait_for

BIN = Path(sys.executable).parent
MONITOR_AGENT, SEEDCTL = str(BIN / "monitor-agent"), str(BIN / "seedctl")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))}
    env.update(extra)
    return env


def test_a_derived_looking_node_id_of_another_key_stops_the_agent_with_one_line(tmp_path, port_factory):
    data = tmp_path / "data"
    derived = load_identity(data).node_id
    wrong = "node-a3f7c9d2e1" if derived != "node-a3f7c9d2e1" else "node-a3f7c9d2e2"
    env = _env(DATA_DIR=str(data), MONITOR_PORT=str(port_factory()), NODE_LOG_SOURCE="none",
               FEDERATION_NODE_ID=wrong, ENABLE_FEDERATION="true")  # fmt: skip
    r = subprocess.run([MONITOR_AGENT, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert wrong in lines[0] and derived in lines[0] and "Unset FEDERATION_NODE_ID" in lines[0]
    # its own derived id, or a custom one, is fine
    assert load_identity(data, derived).node_id == derived
    assert load_identity(data, "acme-node-b").node_id == "acme-node-b"


def test_credentials_of_a_derived_enrolled_user_set_no_node_id(tmp_path, seed_factory):
    seed = seed_factory(start=False, enrolled=("node-a3f7c9d2e1", "acme-node-b"))
    out = tmp_path / "out"
    for name in ("node-a3f7c9d2e1", "acme-node-b"):
        r = subprocess.run(
            [SEEDCTL, "users", "credentials", name, "--spec", str(seed.spec_path), "--out", str(out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    derived_env = (out / "node-a3f7c9d2e1.env").read_text()
    assert "FEDERATION_NODE_ID=" not in derived_env
    assert "FEDERATION_NODE_ID=acme-node-b\n" in (out / "acme-node-b.env").read_text()


def test_enrolled_credentials_under_another_node_id_are_degraded_and_say_why(
    seed_factory, agent_factory, tmp_path
):
    seed = seed_factory(enrolled=("acme-node-b",))
    user, password = seed.credentials("acme-node-b")
    creds = tmp_path / "acme-node-b.credentials"
    creds.write_text(f"{user}:{password}\n")
    creds.chmod(0o600)
    env = {"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url, "FEDERATION_CREDENTIALS": str(creds),
           "FEDERATION_RECONNECT_TIMEOUT": "200"}  # fmt: skip
    a = agent_factory(env)  # no FEDERATION_NODE_ID: publishes as its derived id, which the seed refuses
    status = wait_for(
        lambda: (s := a.get("/api/federation/status").json())["state"] == "DEGRADED" and s, timeout=20,
        what="DEGRADED after the seed refuses node_online",
    )  # fmt: skip
    assert status["connected"] is True
    err = status["lastError"]
    assert err["code"] == "FED_010"
    own = a.agent.identity.node_id
    assert "'acme-node-b'" in err["message"] and str(creds) in err["message"]
    assert f"tbfed.v1.presence.{own}" in err["message"]
    assert "FEDERATION_NODE_ID=acme-node-b" in err["message"]
    page = a.get("/").text
    assert "state-DEGRADED" in page and "FEDERATION_NODE_ID=acme-node-b" in page
    a.stop()

    # the fix the message names works: CONNECTED, and stays so after publishing
    b = agent_factory({**env, "FEDERATION_NODE_ID": "acme-node-b", "DATA_DIR": str(a.config.data_dir)})
    wait_for(lambda: b.get("/api/federation/status").json()["state"] == "CONNECTED", timeout=20)
    wait_for(lambda: b.agent.federation.counters()["sent"] >= 1, timeout=10, what="node_online sent")
    time.sleep(0.5)  # a refusal would arrive within a round trip
    assert b.get("/api/federation/status").json()["state"] == "CONNECTED"


def test_a_rejected_user_is_named_with_its_credentials_file(seed, agent_factory, tmp_path):
    creds = tmp_path / "monitor.credentials"
    creds.write_text("monitor:" + "x" * 32 + "\n")  # a rotated-out password
    creds.chmod(0o600)
    a = agent_factory({"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url,
                       "FEDERATION_CREDENTIALS": str(creds), "FEDERATION_RECONNECT_TIMEOUT": "200"})  # fmt: skip
    err = wait_for(lambda: a.get("/api/federation/status").json()["lastError"], timeout=20, what="FED_002")
    assert err["code"] == "FED_002"
    assert "'monitor'" in err["message"] and str(creds) in err["message"]
    assert "seedctl users credentials" in err["message"]
    # ...and what troubleshooting.md tells the operator to grep for is what the seed logs
    log = seed.state_dir / "seed-1" / "nats-server.log"
    wait_for(lambda: 'authentication error - User "monitor"' in log.read_text(), timeout=5)


class _Stranger(QuietHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self.answer(501, b"<html>not an agent</html>")


@pytest.fixture
def stranger():
    _Stranger.seen = []
    with http_server(_Stranger) as server:
        yield server


def _data_dir_with_federation_rows(tmp_path) -> Path:
    from monitor_agent.config import load_config
    from monitor_agent.store import FederationTaskRow

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = load_config({"DATA_DIR": str(data)}, apply_settings=False)
    store = Store(config.db_path)
    try:
        store.enqueue_peer("node-cccccccccc", 1_700_000_000_000)
        store.enqueue_federation_task(FederationTaskRow(
            "node-cccccccccc", "global-task-000000000001", "task_completed", 1, 5, "wasm", "completed", 10,
            "2026-01-01T00:00:00Z", 1_700_000_000_000))  # fmt: skip
        store.flush()
    finally:
        store.close()
    (data / "api-token").write_text("secret-token-of-this-node-0123456789\n")
    return data


def _clear(data: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MONITOR_AGENT, "clear-federation-data", "--yes"], env=_env(DATA_DIR=str(data), **env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_clear_never_posts_to_a_stranger_on_monitor_port(tmp_path, stranger):
    data = _data_dir_with_federation_rows(tmp_path)
    r = _clear(data, MONITOR_PORT=str(stranger.server_port))  # the stranger sits on "our" port
    assert r.returncode == 0, r.stderr
    assert _Stranger.seen == [], "the API token went to another program"
    assert "in the database" in r.stdout and "HTTP" not in r.stdout + r.stderr


def test_clear_refuses_a_stale_run_file_pointing_at_a_stranger(tmp_path, stranger):
    data = _data_dir_with_federation_rows(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])  # a live pid that does not serve the port
    try:
        runfile.write(data, "127.0.0.1", stranger.server_port, pid=sleeper.pid)
        r = _clear(data)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert r.returncode == 1
    assert "not sending the API token" in r.stderr and "agent.json" in r.stderr
    assert _Stranger.seen == []
    from monitor_agent.config import load_config

    store = Store(load_config({"DATA_DIR": str(data)}, apply_settings=False).db_path, start_writer=False)
    try:
        assert store.query_federation_tasks(10)[1] == 1, "nothing erased on a refusal"
    finally:
        store.close()


def test_clear_reaches_the_real_agent_of_its_data_dir(tmp_path, port_factory):
    """Control: `monitor-agent run` (gunicorn) records itself and the command erases through it."""
    data = _data_dir_with_federation_rows(tmp_path)
    port = port_factory()
    env = _env(DATA_DIR=str(data), MONITOR_PORT=str(port), NODE_LOG_SOURCE="none")
    proc = subprocess.Popen(
        [MONITOR_AGENT, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: runfile.read(data), timeout=30, what="agent.json")
        info = runfile.read(data)
        assert info["port"] == port and json.loads(runfile.path(data).read_text())["pid"] == info["pid"]
        r = _clear(data, MONITOR_PORT="1")  # MONITOR_PORT is not what it follows
        assert r.returncode == 0, r.stderr
        assert "through the running agent" in r.stdout and "HTTP Request" not in r.stdout + r.stderr
        assert "Deleted 1 federation task and 1 peer" in r.stdout
    finally:
        proc.terminate()
        proc.wait(20)
    assert runfile.read(data) is None, "agent.json removed at a clean stop"


def test_stats_without_task_events_do_not_time_each_task(seed, agent_factory):
    """Receive-and-stats node: an observer must not see tasks24h tick at each completion."""
    from tests.agent.conftest import RawNats, task_event

    spy = RawNats(seed.url_for("observer"))
    try:
        spy.capture()
        _no_stats_per_task(seed, agent_factory, spy, task_event)
    finally:
        spy.close()


def _no_stats_per_task(seed, agent_factory, spy, task_event):
    def subjects():
        with spy._lock:
            return [s for s, _, _ in spy.captured]

    bucket = int(time.time() // STATS_PRIVATE_BUCKET_S)
    a = agent_factory({"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url_for("monitor"),
                       "FEDERATION_BROADCAST_TASKS": "false", "FEDERATION_BROADCAST_INTERVAL_MS": "100"})  # fmt: skip
    wait_for(lambda: a.agent.status()["connected"], timeout=20)
    node = a.agent.identity.node_id
    wait_for(lambda: any(f"presence.{node}" in s for s in subjects()), timeout=10, what="node_online")
    for i in range(3):
        a.agent.submit_task_event(task_event("received", f"exec-{i}", chain_id=1, task_type="js"))
        a.agent.submit_task_event(task_event("completed", f"exec-{i}", execution_time_ms=10, exit_code=0))
        time.sleep(0.5)
    time.sleep(1.0)
    assert [s for s in subjects() if s.startswith("tbfed.v1.task.")] == []
    # Stats go out once per wall-clock 15-minute window: none here, unless this run crossed a
    # boundary (:00, :15, :30, :45), and then one per boundary crossed, never one per task.
    crossed = int(time.time() // STATS_PRIVATE_BUCKET_S) - bucket
    assert len([s for s in subjects() if s.startswith("tbfed.v1.stats.")]) <= crossed
    page = a.get("/privacy").text
    assert "once per 15-minute window" in page


def test_history_in_the_log_folder_is_never_sent(seed, agent_factory, tmp_path):
    """Opting in on a first start must not publish the folder's backlog (weeks of old tasks)."""
    import shutil

    from monitor_agent.sources import build_sources

    logs = tmp_path / "logs"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "node-logs" / "debug", logs)
    a = agent_factory({"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url_for("monitor"),
                       "NODE_LOG_SOURCE": "files", "NODE_LOG_DIR": str(logs)})  # fmt: skip
    for source in build_sources(a.config, a.agent):
        a.agent.register_source(source)
    wait_for(lambda: a.agent.store.local_stats()["total"] == 600, timeout=30, what="the history read")
    time.sleep(1.0)
    sent = [m["subject"] for m in a.agent.outbox_snapshot()]
    assert not [s for s in sent if s.startswith("tbfed.v1.task.")], "history went out"
    # a task happening now is sent as before
    from tests.ingest.nodelog import task_text

    (logs / "debug-2024-01-16.log").open("a").write("\n" + task_text())
    wait_for(lambda: any(m["subject"].startswith("tbfed.v1.task.") for m in a.agent.outbox_snapshot()),
             timeout=15, what="a live task sent")  # fmt: skip
