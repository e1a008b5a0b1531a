"""The docker source against podman's real Docker Engine API (`podman system service` on a unix
socket) following real containers: multiplexed 8-byte frames, TTY raw streams, restarts,
re-creation under the same name, and the daemon going away and coming back."""

from __future__ import annotations

import time
import uuid

import pytest

from monitor_agent.sources.docker import DockerSource

from .conftest import all_tasks, wait_for
from .nodelog import task_text

# Generous: the first of these in a run may build the Debian base image (debootstrap).
pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]


def source(agent, api, name) -> DockerSource:
    src = DockerSource(agent, name, api.docker_host, retry_interval=0.1, idle_flush=0.2, poll=0.05)
    agent.register_source(src)
    return src


def done(agent, exec_id):
    t = agent.store.get_local_task(exec_id)
    return t is not None and t.status in ("completed", "failed")


def test_follows_stdout_and_stderr_across_restart_and_recreation(engine_api, node_container, make_agent):
    node = node_container()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    node.write(task_text(ids[0]))
    agent = make_agent()
    src = source(agent, engine_api, node.name)
    agent.start()
    wait_for(lambda: done(agent, ids[0]), what="the first task")
    assert src.connected
    first_id = src.container_id
    assert first_id == node.id

    # stderr frames interleave with stdout; a pretty-printed entry spans many frames.
    node.write("2024-01-15 10:00:00 warn: rpc slow\n", stream=2)
    node.write(task_text(ids[1], pretty=True, exit_code=1))
    wait_for(lambda: done(agent, ids[1]), what="the second task")
    assert agent.store.get_local_task(ids[1]).status == "failed"

    # The container restarts: the stream ends, the source reconnects from its cursor.
    node.restart()
    node.write(task_text(ids[2]))
    wait_for(lambda: done(agent, ids[2]), what="the task after the restart")
    assert src.reconnects >= 1

    # The container is removed and created again under the same name (a new id, new logs).
    node.recreate()
    node.write(task_text(ids[3]))
    wait_for(lambda: done(agent, ids[3]), what="the task of the re-created container")
    assert src.container_id != first_id

    assert sorted(all_tasks(agent)) == sorted(ids)
    # Every event exactly once: no reconnect replayed the container's earlier output.
    assert src.sink.counts["task_events"] == 4 * 3
    assert agent.store.get_cursor(f"docker:{node.name}")["ts"].endswith("Z")


def test_agent_restart_resumes_at_the_cursor_and_waits_for_the_container(
    engine_api, node_container, make_agent
):
    node = node_container(start=False)
    a1 = make_agent("data")
    s1 = source(a1, engine_api, node.name)
    a1.start()
    wait_for(
        lambda: s1._last_problem and "no container" in s1._last_problem, what="a missing-container notice"
    )
    node.start()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    node.write(task_text(first))
    wait_for(lambda: done(a1, first), what="the first task")
    a1.stop()

    node.write(task_text(second))  # printed while the agent is down
    a2 = make_agent("data")
    s2 = source(a2, engine_api, node.name)
    a2.start()
    wait_for(lambda: done(a2, second), what="the task printed while stopped")
    assert s1.sink.counts["task_events"] + s2.sink.counts["task_events"] == 2 * 3
    assert len(all_tasks(a2)) == 2


def test_a_silent_container_is_waited_for_without_an_error(engine_api, node_container, make_agent):
    """podman answers a followed log only with the first output: a node that has printed nothing
    yet is no unreachable daemon (no error line, no reconnect loop), and its first line is read."""
    node = node_container()
    agent = make_agent()
    src = source(agent, engine_api, node.name)
    src.client.timeout = 1.0  # the connect/answer timeout, short so the test need not wait long
    agent.start()
    time.sleep(3)
    assert src._last_problem is None and src.errors == 0
    exec_id = str(uuid.uuid4())
    node.write(task_text(exec_id))
    wait_for(lambda: done(agent, exec_id), what="the first output of a silent container")


def test_tty_container_raw_stream(engine_api, node_container, make_agent):
    node = node_container(tty=True)
    assert node.podman.inspect(node.name)["Config"]["Tty"] is True
    exec_id = str(uuid.uuid4())
    node.write(task_text(exec_id))
    agent = make_agent()
    source(agent, engine_api, node.name)
    agent.start()
    wait_for(lambda: done(agent, exec_id), what="the task from a TTY container")


def test_daemon_gone_then_back_the_source_retries_and_misses_nothing(engine_api, node_container, make_agent):
    node = node_container()
    before, during = str(uuid.uuid4()), str(uuid.uuid4())
    node.write(task_text(before))
    agent = make_agent()
    src = source(agent, engine_api, node.name)
    agent.start()
    wait_for(lambda: done(agent, before), what="the first task")

    engine_api.stop()  # the daemon's API goes away; the container keeps running
    wait_for(lambda: src._last_problem and "cannot reach the Docker daemon" in src._last_problem,
             what="the unreachable-daemon notice")  # fmt: skip
    node.write(task_text(during))
    engine_api.start()
    wait_for(lambda: done(agent, during), what="the task printed while the API was down")
    assert src.sink.counts["task_events"] == 2 * 3
