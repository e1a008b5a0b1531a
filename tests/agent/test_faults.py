"""Connection faults with real seeds: TLS, wrong credentials, nothing listening, seed restart, failover."""

from __future__ import annotations

import json
import time

import pytest
import trustme

from monitor_agent.identity import load_identity
from monitor_agent.protocol import FederationState
from seed import history
from tests.plugins.tools import free_port

from .conftest import agent_env, task_event, wait_for


def _status_states(sub) -> list[str]:
    states = []
    while (event := sub.get(0)) is not None:
        if event["type"] == "federation_status":
            states.append(event["data"]["state"])
    return states


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca, rogue = trustme.CA(), trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    rogue.cert_pem.write_to_path(str(d / "rogue-ca.pem"))
    return d


@pytest.mark.slow
def test_tls_seed_connects_with_its_ca_and_fails_fed_008_with_another(
    seed_factory, make_agent, tls_files, tmp_path
):
    seed = seed_factory(tls={"cert": tls_files / "cert.pem", "key": tls_files / "key.pem"})
    url = seed.url_for("monitor")
    good = make_agent(
        agent_env(
            url, tmp_path / "good", FEDERATION_TLS_ENABLED="true", FEDERATION_TLS_CA=str(tls_files / "ca.pem")
        )
    )
    bad = make_agent(
        agent_env(
            url,
            tmp_path / "bad",
            FEDERATION_TLS_ENABLED="true",
            FEDERATION_TLS_CA=str(tls_files / "rogue-ca.pem"),
        )
    )
    wait_for(lambda: good.status()["connected"], what="TLS agent connected")
    assert good.federation.connected_url().startswith("tls://")
    status = wait_for(lambda: (s := bad.status())["state"] == "ERROR" and s, what="rogue-CA agent in ERROR")
    assert status["lastError"]["code"] == "FED_008" and not status["connected"]
    # A plaintext client is refused by the TLS seed: the same FED_008 path, never a silent downgrade.
    plain = make_agent(agent_env(url, tmp_path / "plain"))
    status = wait_for(lambda: (s := plain.status())["state"] == "ERROR" and s, what="plaintext agent refused")
    assert status["lastError"]["code"] in ("FED_008", "FED_001")


def test_wrong_password_is_fed_002_and_nothing_listening_is_fed_001(module_seed, make_agent, tmp_path):
    user, _ = module_seed.credentials("monitor")
    server = module_seed.spec.servers[0]
    wrong = make_agent(
        agent_env(f"nats://{user}:not-the-password@127.0.0.1:{server.client_port}", tmp_path / "wrong")
    )
    nobody = make_agent(agent_env(f"nats://127.0.0.1:{free_port()}", tmp_path / "nobody"))
    for agent, code in ((wrong, "FED_002"), (nobody, "FED_001")):
        status = wait_for(lambda agent=agent: (s := agent.status())["state"] == "ERROR" and s, what=code)
        assert status["lastError"]["code"] == code, status
        assert status["enabled"] and not status["connected"]
        # The password never shows up in what the operator sees.
        assert "not-the-password" not in str(status)
    # Local monitoring does not care: the task is stored and on the bus.
    sub = nobody.bus.subscribe()
    nobody.submit_task_event(task_event("received", "exec-1", chain_id=1, task_type="js"))
    assert nobody.store.list_local_tasks(10, 0, None)[1] == 1
    assert any(e["type"] == "local_task" for e in iter(lambda: sub.get(0), None))


@pytest.mark.slow
def test_seed_restart_reconnects_in_time_and_delivers_buffered_messages(seed_factory, make_agent, tmp_path):
    # With history, as a production seed: should A's first retry beat B's and flush the buffer
    # before B has subscribed again, B's catch-up reads the five from the stream.
    seed = seed_factory(history={"max_age": "1h", "max_bytes": "64MiB"})
    history.ensure_stream(seed.spec, timeout=30)
    url = seed.url_for("monitor")
    # B retries faster than A, so it is usually listening again when A flushes its buffer.
    b = make_agent(agent_env(url, tmp_path / "b", FEDERATION_RECONNECT_TIMEOUT="100"))
    a = make_agent(agent_env(url, tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="1000"))
    for agent in (a, b):
        wait_for(lambda agent=agent: agent.status()["connected"], what="connected")
    sub = a.bus.subscribe(maxsize=10_000)
    # A's node_online is confirmed by the seed before it goes: otherwise it waits in the buffer
    # beside the five tasks (a loaded CI worker once stopped the seed that early).
    wait_for(
        lambda: (c := a.federation.counters())["sent"] >= 1 and c["buffered"] == 0,
        what="A's node_online confirmed",
    )

    seed.stop()
    wait_for(lambda: a.status()["state"] == "RECONNECTING", what="A RECONNECTING")
    for i in range(5):  # local ingestion carries on while the seed is down
        a.submit_task_event(task_event("received", f"exec-{i}", chain_id=1, task_type="js"))
    assert a.store.list_local_tasks(10, 0, None)[1] == 5
    wait_for(lambda: a.federation.counters()["buffered"] == 5, what="5 messages buffered")

    seed.start()
    restarted = time.monotonic()  # the seed answers /healthz from here: the agent's part is timed
    wait_for(lambda: a.status()["connected"], timeout=15, what="A CONNECTED again")
    assert time.monotonic() - restarted <= 1.0 + 2.0
    wait_for(lambda: b.store.query_federation_tasks(10)[1] == 5, what="buffered tasks at B")
    states = _status_states(sub)
    assert states[:2] == ["RECONNECTING", "CONNECTED"], states
    assert a.federation.counters()["outboundDropped"] == 0


@pytest.mark.slow
def test_cluster_failover_keeps_buffered_messages(seed_factory, make_agent, tmp_path):
    seed = seed_factory(servers=3)
    urls = [seed.url_for("monitor", i) for i in range(3)]
    a = make_agent(agent_env(",".join(urls), tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="500"))
    wait_for(lambda: a.status()["connected"], what="A connected")
    current = a.federation.connected_url()
    index = next(i for i, s in enumerate(seed.spec.servers) if f":{s.client_port}" in current)
    other = (index + 1) % 3
    b = make_agent(agent_env(urls[other], tmp_path / "b"))
    wait_for(lambda: b.status()["connected"], what="B connected")
    # The routes work (a task crosses servers) before anything is stopped; until the cluster has
    # formed and B's interest has propagated, core NATS drops a probe, so probe until one lands.
    probes = 0

    def crossed() -> bool:
        nonlocal probes
        a.submit_task_event(task_event("received", f"probe-{probes}", chain_id=1, task_type="js"))
        probes += 1
        time.sleep(0.1)
        return b.store.query_federation_tasks(1)[1] > 0

    wait_for(crossed, timeout=15, what="a task across the cluster")

    seed.stop(seed.names[index])
    time.sleep(0.2)
    for i in range(5):
        a.submit_task_event(task_event("received", f"exec-{i}", chain_id=1, task_type="js"))
    wait_for(lambda: a.status()["connected"], timeout=5, what="A failed over")
    assert f":{seed.spec.servers[index].client_port}" not in a.federation.connected_url()
    want = {a.identity.task_id(f"exec-{i}") for i in range(5)}  # by taskId: a late probe cannot blur it
    wait_for(lambda: sorted(_stored_ids(b, want)) == sorted(want), what="all tasks at B after failover")
    assert a.status()["state"] == FederationState.CONNECTED.value


def test_a_silent_seed_is_left_for_another_within_5_s(seed_factory, make_agent, tmp_path):
    """A seed that goes silent without closing anything (link cut, host frozen: here the process
    is stopped) must not hold the agent for the minute nats-py's own PING takes to notice."""
    import os
    import signal

    seed = seed_factory(servers=2)
    urls = [seed.url_for("monitor", i) for i in range(2)]
    a = make_agent(agent_env(",".join(urls), tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="500"))
    wait_for(lambda: a.status()["connected"], what="A connected")
    port = next(f":{s.client_port}" for s in seed.spec.servers if f":{s.client_port}" in a.federation.connected_url())
    name = next(s.name for s in seed.spec.servers if f":{s.client_port}" == port)
    pid = seed.pid(name)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_for(lambda: a.status()["connected"] and port not in (a.federation.connected_url() or port),
                 timeout=15, interval=0.05, what="A on the other seed")
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert took <= 5.0, f"failover took {took:.1f} s"


@pytest.mark.slow
def test_lame_duck_restart_of_the_agents_seed_loses_none_of_its_events(seed_factory, make_agent, tmp_path):
    """A rolling restart puts the agent's seed into lame duck: the server closes the connection
    and what the agent had just written into it is gone. The agent keeps each event until a
    flush confirms the server read it and sends the rest again from the next seed: every event
    arrives (copies are dropped by the receiver), none is lost."""
    import os
    import signal
    import threading

    seed = seed_factory(servers=2, limits={"lame_duck_duration_s": 30, "lame_duck_grace_period_s": 0})
    urls = [seed.url_for("monitor", i) for i in range(2)]
    a = make_agent(agent_env(",".join(urls), tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="200"))
    wait_for(lambda: a.status()["connected"], what="A connected")
    index = next(i for i, s in enumerate(seed.spec.servers) if f":{s.client_port}" in a.federation.connected_url())
    b = make_agent(agent_env(urls[1 - index], tmp_path / "b"))
    wait_for(lambda: b.status()["connected"], what="B connected")
    probes = 0

    def crossed() -> bool:
        nonlocal probes
        a.submit_task_event(task_event("received", f"probe-{probes}", chain_id=1, task_type="js"))
        probes += 1
        time.sleep(0.1)
        return b.store.query_federation_tasks(1)[1] > 0

    wait_for(crossed, timeout=15, what="a task across the cluster")
    stop, sent = threading.Event(), [0]

    def publish() -> None:  # 30 task events/s, as the node's log produces them
        t0 = time.monotonic()
        while not stop.is_set():
            a.submit_task_event(task_event("received", f"exec-{sent[0]}", chain_id=1, task_type="js"))
            sent[0] += 1
            time.sleep(max(0.0, t0 + sent[0] / 30 - time.monotonic()))

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        time.sleep(1.0)
        # The seed falls behind reading (a loaded host: here it is stopped for a second while the
        # agent keeps writing), then goes into lame duck with no grace period: it closes the
        # agent's connection with what it had not read yet still in the socket.
        name = seed.names[index]
        pid = seed.pid(name)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(pid, signal.SIGUSR2)
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: a.status()["connected"] and f":{seed.spec.servers[index].client_port}"
                 not in (a.federation.connected_url() or ":"), timeout=40, what="A on the other seed")
        time.sleep(1.0)
    finally:
        stop.set()
        publisher.join(10)
    assert sent[0] >= 60
    want = {a.identity.task_id(f"exec-{i}") for i in range(sent[0])}
    wait_for(lambda: set(_stored_ids(b, want)) == want, timeout=20, what=f"all {sent[0]} events at B")
    b.store.flush()
    assert sorted(_stored_ids(b, want)) == sorted(want)  # each stored once
    assert a.federation.counters()["outboundDropped"] == 0


def test_publish_permission_violation_is_fed_010_and_receiving_goes_on(
    module_seed, make_agent, raw_nats, tmp_path
):
    # The observer user may subscribe but not publish: the seed refuses our presence and tasks.
    agent = make_agent(agent_env(module_seed.url_for("observer"), tmp_path / "obs"))
    status = wait_for(
        lambda: (s := agent.status())["lastError"] and s["lastError"]["code"] == "FED_010" and s,
        what="FED_010 after a refused publish",
    )
    # Connected, but nothing we send arrives: DEGRADED (never the green CONNECTED), naming user and fix.
    assert status["state"] == "DEGRADED" and status["connected"] is True
    message = status["lastError"]["message"]
    assert "refused publish to tbfed.v1.presence." in message and "'observer'" in message
    assert "FEDERATION_BROADCAST_TASKS=false" in message
    peer = load_identity(tmp_path / "peer")
    msg = {
        "v": 1,
        "event": "node_online",
        "nodeId": peer.node_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # receivers drop stale copies
        "region": "SA",
        "version": "1.0",
        "tasksReported": 0,
    }
    payload = json.dumps(msg).encode()
    raw_nats(module_seed.url_for("monitor")).publish(
        f"tbfed.v1.presence.{peer.node_id}", payload, peer.headers(payload)
    )
    wait_for(lambda: agent.store.list_peers(), what="the observer still receives")


def test_agent_started_while_the_seed_is_down_connects_once_it_is_up(seed_factory, make_agent, tmp_path):
    """A node that boots before its seed must not stay in ERROR forever: it keeps trying."""
    seed = seed_factory(start=False)
    a = make_agent(agent_env(seed.url_for("monitor"), tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="500"))
    wait_for(lambda: a.status()["state"] == "ERROR", what="A in ERROR while nothing listens")
    assert a.status()["lastError"]["code"] == "FED_001"
    a.submit_task_event(task_event("received", "exec-early", chain_id=1, task_type="js"))
    assert a.store.list_local_tasks(10, 0, None)[1] == 1  # local monitoring carries on
    seed.start()
    started = time.monotonic()  # the seed answers /healthz from here: the agent's part is timed
    wait_for(lambda: a.status()["connected"], timeout=15, what="A CONNECTED once the seed is up")
    assert time.monotonic() - started <= 0.5 + 2.0 + 1.0
    assert a.status()["lastError"] is None


def _stored_ids(agent, wanted: set[str]) -> list[str]:
    """The taskIds among `wanted` that `agent` stored from the federation, once per stored row."""
    rows = agent.store.query_federation_tasks(100_000)[0]
    return [r.task_id for r in rows if r.task_id in wanted]
