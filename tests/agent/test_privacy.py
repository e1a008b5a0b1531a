"""Privacy: allow-list anonymizer, strict level, the privacy gate, and a property test on the wire."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor_agent import anonymizer, privacy_gate
from monitor_agent.agent import Agent
from monitor_agent.config import load_config
from monitor_agent.model import LocalTask

from .conftest import RawNats, agent_env, task_event, wait_for

SECRET_EXEC = "550e8400-e29b-41d4-a716-446655440000"


def _task(**kw) -> LocalTask:
    base = dict(
        execution_id=SECRET_EXEC,
        status="completed",
        received_at=datetime(2024, 1, 15, 10, 30, 0, tzinfo=UTC),
        started_at=None,
        finished_at=datetime(2024, 1, 15, 10, 33, 17, tzinfo=UTC),
        chain_id=1,
        block_number=18950234,
        task_type="js",
        execution_time_ms=245,
        exit_code=0,
        steps=2_000_000_000,
        memory_peak=123456,
        cached=True,
        private={"wallet": "0x" + "ab" * 20, "taskHash": "cd" * 32},
    )
    base.update(kw)
    return LocalTask(**base)


def test_standard_message_is_exactly_the_allow_list():
    msg = anonymizer.task_message(
        _task(), node_id="node-a3f7c9d2e1", task_id=lambda e: "global-task-5d41402abc4b"
    )
    assert msg == {
        "v": 1,
        "event": "task_completed",
        "nodeId": "node-a3f7c9d2e1",
        "taskId": "global-task-5d41402abc4b",
        "chainId": 1,
        "blockNumber": 18950234,
        "taskType": "js",
        "status": "completed",
        "executionTimeMs": 245,
        "timestamp": "2024-01-15T10:33:17Z",
    }
    assert privacy_gate.check(msg) is None


def test_strict_drops_block_number_and_coarsens_time():
    msg = anonymizer.task_message(
        _task(execution_time_ms=7_321),
        node_id="n-1x",
        task_id=lambda e: "global-task-5d41402abc4b",
        privacy="strict",
    )
    assert msg["blockNumber"] is None
    assert msg["timestamp"] == "2024-01-15T10:30:00Z"
    assert msg["executionTimeMs"] == 5_000
    assert anonymizer.task_message(_task(status="running"), node_id="n", task_id=str) is None


def test_odd_task_types_never_leave_as_they_are():
    for bad in ("node1.example.com", "ab" * 16, SECRET_EXEC, "alice@example.com", "JS "):
        msg = anonymizer.task_message(
            _task(task_type=bad), node_id="n-1x", task_id=lambda e: "global-task-000000000000"
        )
        assert msg["taskType"] in ("unknown", "js")


def test_gate_is_token_anchored_no_false_positives_on_normal_values():
    normal = [
        "0.1.0",
        "v2.15.1",
        "2024-01-15T10:30:00Z",
        "global-task-5d41402abc4b",
        "node-a3f7c9d2e1",
        "task_completed",
        "MIDDLE-EAST",
        "wasm",
        "my-custom-node-id",
    ]
    assert [v for v in normal if privacy_gate.scan_text(v)] == []
    leaks = {
        "0x" + "ab" * 20: "0x",
        "0x" + "cd" * 32: "0x",  # a block hash is not mistaken for... anything allowed: it is blocked too
        "ef" * 32: "hex",
        "js_" + "01" * 32: "hex",
        SECRET_EXEC: "UUID",
        "10.1.2.3": "IPv4",
        "2001:db8::1": "IPv6",
        "ops@example.org": "e-mail",
        "runner1.example.net": "host",
    }
    for value, kind in leaks.items():
        found = privacy_gate.check({"taskType": value})
        assert found is not None and found.field == "taskType", value
        assert kind.lower() in found.kind.lower() or kind in ("0x", "hex"), (value, found)


def test_a_blocked_message_is_fed_003_counted_and_the_secret_is_not_logged(
    make_agent, tmp_path, caplog, module_seed
):
    agent = make_agent(agent_env(module_seed.url_for("monitor"), tmp_path / "a"))
    wait_for(lambda: agent.status()["connected"], what="connected")
    caplog.set_level(logging.DEBUG)
    secret = "0x" + "12" * 20
    msg = {"v": 1, "event": "task_received", "nodeId": agent.identity.node_id, "taskType": secret}
    assert agent.federation._enqueue("task", msg) is False
    assert agent.status()["lastError"]["code"] == "FED_003"
    assert "taskType" in agent.status()["lastError"]["message"]
    assert secret not in caplog.text and secret not in json.dumps(agent.status())
    assert all(secret not in m["payload"] for m in agent.outbox_snapshot())


SECRETS = st.sampled_from(
    [
        "0x" + "a1" * 20,  # wallet
        "0x" + "b2" * 32,  # block hash
        "c3" * 32,  # private key / task hash
        "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70",  # execution id
        "192.168.77.201",
        "fe80::1ff:fe23:4567:890a",
        "operator.jane@example.com",
        "runner-7.truebit-nodes.example.net",
    ]
)


@pytest.fixture(scope="module")
def wire(module_seed, tmp_path_factory):
    """A raw subscriber capturing all seed traffic, and a standard and a strict agent publishing."""
    spy = RawNats(module_seed.url_for("monitor"))
    spy.capture()
    agents = {}
    try:
        for level in ("standard", "strict"):
            env = agent_env(
                module_seed.url_for("monitor"), tmp_path_factory.mktemp(level), FEDERATION_PRIVACY=level
            )
            agents[level] = Agent(load_config(env))
            agents[level].start()
        for agent in agents.values():
            wait_for(lambda agent=agent: agent.status()["connected"], what="connected")
        yield spy, agents
    finally:
        for agent in agents.values():
            agent.stop()
        spy.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_secret_ever_reaches_the_wire(wire, data):
    spy, agents = wire
    agent = agents[data.draw(st.sampled_from(["standard", "strict"]))]
    secrets = [data.draw(SECRETS) for _ in range(4)]
    eid = f"{secrets[0]}|{uuid.uuid4()}"
    task_id = agent.identity.task_id(eid)
    agent.submit_task_event(
        task_event(
            "received",
            eid,
            chain_id=data.draw(st.integers(0, 2**40)),
            block_number=data.draw(st.integers(0, 2**40)),
            task_type=secrets[1],
            private={"wallet": secrets[2], "input": secrets[3], "host": secrets[1]},
        )
    )
    agent.submit_task_event(
        task_event(
            "completed",
            eid,
            execution_time_ms=data.draw(st.integers(0, 10**9)),
            exit_code=data.draw(st.sampled_from([0, 1, None])),
            private={"log": secrets[3]},
        )
    )
    wait_for(
        lambda: sum(1 for _, d, _ in list(spy.captured) if task_id.encode() in d) == 2,
        what="both task events on the wire",
    )
    blob = b"\n".join(s.encode() + d + json.dumps(h or {}).encode() for s, d, h in list(spy.captured))
    for secret in secrets:
        assert secret.encode() not in blob, secret
