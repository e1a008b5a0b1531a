"""The docker source against the Engine API stand-in (real unix socket, real multiplexed frames)."""

from __future__ import annotations

import uuid

import pytest

from monitor_agent.sources.docker import DockerSource

from .conftest import all_tasks, wait_for
from .nodelog import task_text

pytestmark = pytest.mark.timeout(120)


def source(agent, engine, name="runner-node") -> DockerSource:
    src = DockerSource(agent, name, f"unix://{engine.path}", retry_interval=0.1, idle_flush=0.2, poll=0.05)
    agent.register_source(src)
    return src


def done(agent, exec_id):
    t = agent.store.get_local_task(exec_id)
    return t is not None and t.status in ("completed", "failed")


def test_follows_stdout_and_stderr_across_a_container_restart(docker_engine, make_agent):
    engine = docker_engine
    engine.add("runner-node")
    ids = [str(uuid.uuid4()) for _ in range(4)]
    engine.write("runner-node", task_text(ids[0]))
    agent = make_agent()
    src = source(agent, engine)
    agent.start()
    wait_for(lambda: done(agent, ids[0]), what="the first task")
    assert src.connected

    # stderr frames interleave with stdout; a pretty-printed entry spans many frames.
    engine.write("runner-node", "2024-01-15 10:00:00 warn: rpc slow\n", stream=2)
    engine.write("runner-node", task_text(ids[1], pretty=True, exit_code=1))
    wait_for(lambda: done(agent, ids[1]), what="the second task")
    assert agent.store.get_local_task(ids[1]).status == "failed"

    # The container restarts: the stream ends, the source reconnects from its cursor.
    engine.restart("runner-node")
    engine.write("runner-node", task_text(ids[2]))
    wait_for(lambda: done(agent, ids[2]), what="the task after the restart")
    assert src.reconnects >= 1
    assert sorted(all_tasks(agent)) == sorted(ids[:3])
    # Every event exactly once: the reconnect did not replay the container's earlier output.
    assert src.sink.counts["task_events"] == 3 * 3
    # Read-only: only GETs of the container's description and logs, never exec or anything else.
    assert engine.requests and all(m == "GET" for m, _ in engine.requests)
    assert all("/json" in p or "/logs?" in p for _, p in engine.requests)
    logs_calls = [p for _, p in engine.requests if "/logs?" in p]
    assert all(
        "follow=1" in p and "timestamps=1" in p and "stdout=1" in p and "stderr=1" in p for p in logs_calls
    )
    assert any("since=" in p for p in logs_calls[1:]), (
        logs_calls,
        agent.store.get_cursor("docker:runner-node"),
    )


def test_agent_restart_resumes_at_the_cursor_and_waits_for_the_container(docker_engine, make_agent):
    engine = docker_engine
    a1 = make_agent("data")
    s1 = source(a1, engine)
    a1.start()
    wait_for(
        lambda: s1._last_problem and "no container" in s1._last_problem, what="a missing-container notice"
    )
    engine.add("runner-node")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    engine.write("runner-node", task_text(first))
    wait_for(lambda: done(a1, first), what="the first task")
    a1.stop()

    engine.write("runner-node", task_text(second))  # written while the agent is down
    a2 = make_agent("data")
    s2 = source(a2, engine)
    a2.start()
    wait_for(lambda: done(a2, second), what="the task written while stopped")
    assert s1.sink.counts["task_events"] + s2.sink.counts["task_events"] == 2 * 3
    assert len(all_tasks(a2)) == 2


def test_tty_container_raw_stream(docker_engine, make_agent):
    engine = docker_engine
    engine.add("node", tty=True)
    exec_id = str(uuid.uuid4())
    engine.write("node", task_text(exec_id))
    agent = make_agent()
    source(agent, engine, name="node")
    agent.start()
    wait_for(lambda: done(agent, exec_id), what="the task from a TTY container")
