"""Fixtures of the web tests: data written through the agent's real ingestion and store paths."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from monitor_agent.model import TaskEvent
from monitor_agent.store import FederationTaskRow
from monitor_agent.web.openapi import openapi_document

from .openapi_check import OpenAPIChecker


@pytest.fixture(scope="session")
def openapi() -> OpenAPIChecker:
    return OpenAPIChecker(openapi_document())


def add_federation_tasks(agent, rows: list[dict]) -> None:
    """Store received task rows the way the federation pipeline does (batch writer), then wait."""
    for r in rows:
        agent.store.enqueue_federation_task(
            FederationTaskRow(
                source_node=r.get("source", "node-aaaaaaaaaa"),
                task_id=r["task_id"],
                event="task_" + r.get("status", "completed"),
                chain_id=r.get("chain", 1),
                block_number=r.get("block", 18_950_234),
                task_type=r.get("type", "wasm"),
                status=r.get("status", "completed"),
                execution_time_ms=r.get("ms", 245),
                timestamp=r.get("at", datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                received_at=int(r.get("at", datetime.now(UTC)).timestamp() * 1000),
            )
        )
    assert agent.store.flush(5.0)


def add_peer(agent, node_id: str, region: str = "EU-WEST", event: str = "node_heartbeat") -> None:
    agent.store.enqueue_peer(node_id, int(time.time() * 1000), event=event, region=region, version="0.1.0")
    agent.store.flush(5.0)


def local_event(kind: str, execution_id: str, **kw) -> TaskEvent:
    return TaskEvent(kind=kind, execution_id=execution_id, at=kw.pop("at", datetime.now(UTC)), **kw)


@pytest.fixture
def seeded_agent(agent_factory):
    """An agent with 30 received tasks on chains 1 and 43113, two peers and three local tasks."""
    running = agent_factory()
    base = datetime.now(UTC) - timedelta(minutes=30)
    add_federation_tasks(
        running.agent,
        [
            {
                "task_id": f"global-task-{i:012x}",
                "chain": 1 if i % 3 else 43113,
                "at": base + timedelta(minutes=i),
                "status": "failed" if i % 10 == 0 else "completed",
                "source": "node-aaaaaaaaaa" if i % 2 else "node-bbbbbbbbbb",
            }
            for i in range(30)
        ],
    )
    add_peer(running.agent, "node-aaaaaaaaaa", "EU-WEST")
    add_peer(running.agent, "node-bbbbbbbbbb", "ASIA", event="node_offline")
    a = running.agent
    a.submit_task_event(
        local_event(
            "received",
            "6f1c2b9e-0000-4000-8000-000000000001",
            chain_id=1,
            block_number=18_950_000,
            task_type="js",
            private={"taskId": "js_" + "ab" * 32, "blockHash": "0x" + "cd" * 32},
        )
    )
    a.submit_task_event(
        local_event("completed", "6f1c2b9e-0000-4000-8000-000000000001", execution_time_ms=321, exit_code=0)
    )
    a.submit_task_event(
        local_event("received", "6f1c2b9e-0000-4000-8000-000000000002", chain_id=43113, task_type="rs")
    )
    a.submit_task_event(
        local_event("completed", "6f1c2b9e-0000-4000-8000-000000000002", execution_time_ms=50, exit_code=3)
    )
    a.submit_task_event(
        local_event("received", "6f1c2b9e-0000-4000-8000-000000000003", chain_id=1, task_type="api")
    )
    return running
