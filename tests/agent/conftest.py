"""Fixtures of the agent-core tests: a module-wide real seed, agents on it, raw NATS clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from monitor_agent.agent import Agent
from monitor_agent.config import load_config
from monitor_agent.loops import close_loop
from monitor_agent.model import TaskEvent
from tests.plugins.seed import make_seed as make_seed  # re-exported for the agent tests
from tests.plugins.tools import wait_for as wait_for  # re-exported for the agent tests


@pytest.fixture(scope="module")
def module_seed(tmp_path_factory, nats_server_bin, _seed_secret_cache):
    """One single-server seed shared by a test module (starting seeds is the slow part)."""
    handle = make_seed(tmp_path_factory.mktemp("seed"), nats_server_bin, _seed_secret_cache)
    yield handle
    with contextlib.suppress(Exception):
        handle.stop()


def agent_env(seed_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "DATA_DIR": str(data_dir),
        "NODE_LOG_SOURCE": "none",
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": seed_url,
        "FEDERATION_RECONNECT_TIMEOUT": "500",
    }
    env.update(extra)
    return env


@pytest.fixture
def make_agent(tmp_path_factory):
    """make_agent(env) -> a started in-process Agent; all are stopped at teardown."""
    made: list[Agent] = []

    def make(env: dict[str, str], *, start: bool = True) -> Agent:
        env = dict(env)
        env.setdefault("DATA_DIR", str(tmp_path_factory.mktemp("agent")))
        env.setdefault("NODE_LOG_SOURCE", "none")
        agent = Agent(load_config(env))
        made.append(agent)
        if start:
            agent.start()
        return agent

    yield make
    for agent in reversed(made):
        with contextlib.suppress(Exception):
            agent.stop()


def task_event(kind: str, execution_id: str, **kw) -> TaskEvent:
    kw.setdefault("at", datetime.now(UTC))
    return TaskEvent(kind, execution_id, **kw)


class RawNats:
    """A raw nats-py client in its own loop thread: publish anything, capture everything."""

    def __init__(self, url: str):
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = self.run(nats.connect(url, allow_reconnect=False, connect_timeout=5))
        self.captured: list[tuple[str, bytes, dict | None]] = []
        self._lock = threading.Lock()

    def run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def capture(self, subject: str = "tbfed.v1.>") -> None:
        async def cb(msg):
            with self._lock:
                self.captured.append((msg.subject, msg.data, msg.headers))

        async def sub():
            await self.nc.subscribe(subject, cb=cb, pending_msgs_limit=500_000)
            await self.nc.flush()

        self.run(sub())

    def publish(self, subject: str, data: bytes, headers: dict | None = None, flush: bool = True) -> None:
        async def pub():
            await self.nc.publish(subject, data, headers=headers)
            if flush:
                await self.nc.flush()

        self.run(pub())

    def publish_many(self, items) -> None:
        async def pub():
            for subject, data, headers in items:
                await self.nc.publish(subject, data, headers=headers)
            await self.nc.flush(timeout=30)

        self.run(pub(), timeout=60)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.nc.close(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        close_loop(self.loop)


@pytest.fixture
def raw_nats():
    """raw_nats(url) -> RawNats; all closed at teardown."""
    made: list[RawNats] = []

    def make(url: str) -> RawNats:
        client = RawNats(url)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
