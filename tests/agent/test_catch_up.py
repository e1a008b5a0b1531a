"""Catch-up (issue 16): an agent back from an outage reads what it missed from the seeds' task
history (JetStream, spec `history:`) through the same receive pipeline, and stores it once.

Real nats-server with JetStream started by seedctl's code, real agents, real SQLite.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from monitor_agent.identity import load_identity
from seed import history
from tests.plugins.messages import signed, task_message, task_publication

from .conftest import agent_env, make_seed, wait_for


def _publish_tasks(raw, ident, numbers) -> None:
    raw.publish_many([task_publication(ident, n) for n in numbers])


def _stored(agent) -> list[tuple[str, str, str]]:
    agent.store.flush()
    rows, total = agent.store.query_federation_tasks(1000)
    keys = [(r.source_node, r.task_id, r.status) for r in rows]
    assert total >= len(keys)  # the total covers the page (it may already count a batch being stored)
    return keys


@contextlib.contextmanager
def _seed_with_history(root, binary, secret_cache, max_age: str, max_bytes: str):
    """A real seed with `history:` and its stream made (as `seedctl up` makes it); stopped at the end."""
    handle = make_seed(root, binary, secret_cache, history={"max_age": max_age, "max_bytes": max_bytes})
    try:
        history.ensure_stream(handle.spec, timeout=30)
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.stop()


@pytest.fixture(scope="module")
def history_seed(tmp_path_factory, nats_server_bin, _seed_secret_cache):
    with _seed_with_history(tmp_path_factory.mktemp("seed"), nats_server_bin, _seed_secret_cache, "1h", "64MiB") as s:
        yield s


def test_agent_back_from_an_outage_stores_every_missed_task_once(history_seed, make_agent, raw_nats, tmp_path):
    url = history_seed.url_for("monitor")
    member = load_identity(tmp_path / "member")
    raw = raw_nats(url)
    data = tmp_path / "b"
    b = make_agent(agent_env(url, data))
    wait_for(lambda: b.status()["connected"], what="B connected")
    _publish_tasks(raw, member, [0])
    wait_for(lambda: len(_stored(b)) == 1, what="the live task at B")
    b.stop()

    _publish_tasks(raw, member, range(1, 51))  # 50 signed tasks while B is down

    # Opted out: B comes back live only; the hole stays.
    b = make_agent(agent_env(url, data, FEDERATION_CATCH_UP="false"))
    wait_for(lambda: b.status()["connected"], what="B connected (no catch-up)")
    time.sleep(1.5)
    assert len(_stored(b)) == 1 and b.status()["catchUp"]["historyOffered"] is None
    b.stop()

    b = make_agent(agent_env(url, data))
    start = time.monotonic()
    wait_for(lambda: len(_stored(b)) == 51, timeout=10, what="all 50 missed tasks stored within 10 s")
    took = time.monotonic() - start
    keys = _stored(b)
    assert len(set(keys)) == 51 and {k[0] for k in keys} == {member.node_id}
    status = wait_for(lambda: (s := b.status()["catchUp"]) and not s["catchingUp"] and s, what="catch-up done")
    assert status["historyOffered"] is True and status["code"] is None and status["accepted"] >= 50
    assert b.status()["lastError"] is None, took

    # Another restart replays the overlap again: still never stored twice.
    b.stop()
    b = make_agent(agent_env(url, data))
    wait_for(lambda: (s := b.status()["catchUp"]) and s["lastCompletedAt"], what="second catch-up done")
    assert sorted(_stored(b)) == sorted(keys)


def test_tampered_history_is_dropped_like_live_traffic(history_seed, make_agent, raw_nats, tmp_path):
    """Replayed history is as trusted as live traffic: a forged or re-keyed event is dropped."""
    url = history_seed.url_for("monitor")
    member, forger = load_identity(tmp_path / "m"), load_identity(tmp_path / "f")
    raw = raw_nats(url)
    good, _ = signed(member, task_message(member.node_id, 900))
    forged, _ = signed(member, task_message(member.node_id, 901))
    tampered = good.replace(b"245", b"999")
    raw.publish_many([
        (f"tbfed.v1.task.{member.node_id}", good, member.headers(good)),
        (f"tbfed.v1.task.{member.node_id}", forged, forger.headers(forged)),  # another key, same nodeId
        (f"tbfed.v1.task.{member.node_id}", tampered, member.headers(good)),  # signature of other bytes
    ])  # fmt: skip
    c = make_agent(agent_env(url, tmp_path / "c"))  # a fresh node reads the whole history
    status = wait_for(lambda: (s := c.status()["catchUp"]) and s["lastCompletedAt"] and s, what="catch-up")
    stored = {k[1] for k in _stored(c) if k[0] == member.node_id}
    assert "global-task-000000000384" in stored  # 900
    assert "global-task-000000000385" not in stored  # forged
    assert status["dropped"] >= 2
    assert c.federation.counters()["drops"].keys() & {"bad_signature", "key_mismatch"}


def test_no_history_on_the_seed_is_fed_011_and_not_an_error(module_seed, make_agent, tmp_path):
    a = make_agent(agent_env(module_seed.url_for("monitor"), tmp_path / "a"))
    status = wait_for(lambda: (s := a.status()) and s["catchUp"]["historyOffered"] is False and s, what="FED_011")
    assert status["catchUp"]["code"] == "FED_011" and status["lastError"] is None and status["connected"]


def test_history_older_than_max_age_is_not_replayed(tmp_path_factory, nats_server_bin, _seed_secret_cache, make_agent, raw_nats, tmp_path):  # noqa: E501
    root = tmp_path_factory.mktemp("seed")
    with _seed_with_history(root, nats_server_bin, _seed_secret_cache, "10s", "8MiB") as s:
        url = s.url_for("monitor")
        member = load_identity(tmp_path / "member")
        raw = raw_nats(url)
        _publish_tasks(raw, member, range(0, 5))  # will be older than max_age
        time.sleep(11)
        _publish_tasks(raw, member, range(5, 8))
        a = make_agent(agent_env(url, tmp_path / "a"))
        wait_for(lambda: (st := a.status()["catchUp"]) and st["lastCompletedAt"], what="catch-up done")
        ids = sorted(k[1] for k in _stored(a))
        assert ids == [f"global-task-{n:012x}" for n in range(5, 8)]


def test_status_api_and_privacy_tab_say_the_seeds_keep_history(history_seed, agent_factory, tmp_path):
    running = agent_factory(agent_env(history_seed.url_for("monitor"), tmp_path / "w"))
    body = wait_for(
        lambda: (b := running.client.get("/api/federation/status").json()) and b["catchUp"]["lastCompletedAt"] and b,
        what="catch-up reported by the status API",
    )
    assert body["catchUp"]["historyOffered"] is True and body["catchUp"]["maxAgeS"] == 3600
    page = running.client.get("/privacy").text
    assert "The seeds keep task events" in page and "1.0 hours" in page


async def _stream_leader(url: str, all_current: bool = False) -> str | None:
    """The history stream's leader; with `all_current`, None until every replica is current too."""
    import nats as nats_py

    from monitor_agent.protocol import history_stream

    nc = await nats_py.connect(url)
    try:
        try:
            cluster = (await nc.jetstream().stream_info(history_stream())).cluster
        except (TimeoutError, nats_py.errors.Error):
            if all_current:  # no answer while the stream elects its leader: not ready yet
                return None
            raise
        if all_current and not all(r.current for r in cluster.replicas or ()):
            return None
        return cluster.leader
    finally:
        await nc.close()


@pytest.mark.slow
def test_three_seed_history_survives_a_seed_killed_during_catch_up(seed_factory, make_agent, raw_nats, tmp_path):
    import asyncio
    import os
    import signal

    s = seed_factory(servers=3, history={"max_age": "1h", "max_bytes": "64MiB"})
    state = history.ensure_stream(s.spec, timeout=60)
    assert state.replicas == 3
    urls = [s.url_for("monitor", i) for i in range(3)]
    raw = raw_nats(urls[0])
    # Plain (unacknowledged) publishes are stored only by a stream whose Raft group has a leader:
    # on a busy machine it can still be electing one right after `ensure_stream`, and what arrives
    # meanwhile is dropped (one run under two workers stopped short of 2 000 stored).
    wait_for(lambda: asyncio.run(_stream_leader(urls[0], all_current=True)), timeout=30, interval=0.2,
             what="a stream leader with every replica current")
    members = [load_identity(tmp_path / f"m{i}") for i in range(20)]
    for i, member in enumerate(members):  # 20 members x 100 tasks: 2 000 events in the history
        _publish_tasks(raw, member, range(i * 1000, i * 1000 + 100))
    wait_for(lambda: history.ensure_stream(s.spec, timeout=30).messages == 2000, timeout=30, what="2000 stored")
    leader = asyncio.run(_stream_leader(urls[0]))

    a = make_agent(agent_env(",".join(urls), tmp_path / "a", FEDERATION_RECONNECT_TIMEOUT="500"))
    wait_for(lambda: a.status()["catchUp"]["read"] > 0, timeout=20, what="catch-up under way")
    os.kill(s.pid(leader), signal.SIGKILL)  # the stream's leader dies mid catch-up
    def total() -> int:
        a.store.flush()
        return a.store.query_federation_tasks(1)[1]

    wait_for(lambda: total() == 2000, timeout=60, what="all 2000 events stored despite the killed seed")
    time.sleep(1)
    assert total() == 2000  # and not one more: none stored twice (UNIQUE source, task, event)
