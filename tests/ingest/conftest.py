"""Fixtures of the ingest tests: the node-log corpus, real agents on tmp SQLite."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from msgspec import to_builtins

from monitor_agent.agent import Agent
from monitor_agent.config import load_config
from monitor_agent.web.serializers import local_task
from tests.plugins.tools import wait_for as _wait_for

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "node-logs"


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((CORPUS / "expected.json").read_text())


def corpus_bytes(rel: str) -> bytes:
    data = (CORPUS / rel).read_bytes()
    return gzip.decompress(data) if rel.endswith(".gz") else data


@pytest.fixture
def make_agent(tmp_path):
    """Build real Agents (real SQLite store under tmp_path, federation off); all stopped at teardown."""
    made: list[Agent] = []

    def make(name: str = "agent", **env: str) -> Agent:
        environ = {"DATA_DIR": str(tmp_path / name), "NODE_LOG_SOURCE": "none", **env}
        agent = Agent(load_config(environ))
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds (longer default)."""
    return _wait_for(predicate, timeout=timeout, interval=interval, what=what)


def all_tasks(agent: Agent) -> dict[str, dict]:
    rows, total = agent.store.list_local_tasks(limit=100_000)
    assert len(rows) == total
    return {t.execution_id: to_builtins(local_task(t, include_private=True)) for t in rows}
