"""The demo's replayer: a followed file that keeps producing new tasks."""

from __future__ import annotations

import pytest

from monitor_agent.logs import LogParser
from monitor_agent.model import TaskEvent
from monitor_agent.sources.files import FileSource
from seed.demo_log import LogReplayer, sample_log_path

from .conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def sample_tasks() -> int:
    parser = LogParser()
    records = list(parser.feed_all(sample_log_path().read_text().splitlines()))
    return len({r.execution_id for r in records if isinstance(r, TaskEvent)})


def test_replay_keeps_producing_fresh_tasks(tmp_path, make_agent):
    n = sample_tasks()
    assert n >= 5
    folder = tmp_path / "node"
    replayer = LogReplayer(folder / "node-2024-01-15.log", speed=400, loop_pause=0.1)
    agent = make_agent()
    agent.register_source(FileSource(agent, folder, poll_interval=0.05, rescan_interval=0.1, idle_flush=0.2))
    agent.start()
    replayer.start()
    try:
        wait_for(
            lambda: agent.store.local_stats()["byStatus"]["completed"] >= n + 2,
            timeout=40,
            what="a second loop",
        )
    finally:
        replayer.stop()
    assert replayer.loops >= 1
    # Every loop is new tasks (fresh execution ids), not the same ones again.
    assert agent.store.local_stats()["total"] > n
