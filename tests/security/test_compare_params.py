"""Attacks on /api/compare and on the comparison state, against a real served agent.

Hostile query strings get a 400 naming the parameter (and the agent keeps answering); a peer
inventing chain ids and task types cannot grow the comparison state or the /metrics series
without bound.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor_agent.compare import MAX_METRIC_CHAINS, MAX_NETWORK_SERIES
from monitor_agent.store import FederationTaskRow, now_ms
from monitor_agent.web.openapi import openapi_document
from tests.web.openapi_check import OpenAPIChecker

HOSTILE = [
    ({"window": "1H"}, "window"),
    ({"window": "24h\n"}, "window"),
    ({"window": "7d"}, "window"),
    ({"window": ""}, "window"),
    ({"window": "1h' OR '1'='1"}, "window"),
    ({"chainId": "-1"}, "chainId"),
    ({"chainId": "1.5"}, "chainId"),
    ({"chainId": "0x10"}, "chainId"),
    ({"chainId": "١٢"}, "chainId"),  # Arabic-Indic digits
    ({"chainId": "9" * 30}, "chainId"),
    ({"chainId": "9223372036854775808"}, "chainId"),
    ({"chainId": "1; DROP TABLE federation_tasks"}, "chainId"),
    ({"chainId": " 1"}, "chainId"),
    ({"taskType": "WASM"}, "taskType"),
    ({"taskType": "../../etc/passwd"}, "taskType"),
    ({"taskType": "wasm\x00"}, "taskType"),
    ({"taskType": "a" * 33}, "taskType"),
    ({"taskType": "<script>alert(1)</script>"}, "taskType"),
    ({"taskType": ""}, "taskType"),
    ({"taskType": "wasm\n"}, "taskType"),
    ({"chain": "1"}, "chain"),
    ({"window[]": "1h"}, "window[]"),
]


@pytest.fixture
def served(agent_factory):
    return agent_factory()


def test_hostile_parameters_are_refused_naming_them_and_the_agent_keeps_serving(served):
    checker = OpenAPIChecker(openapi_document())
    for params, named in HOSTILE:
        r = served.get("/api/compare", params=params)
        assert r.status_code == 400, (params, r.text)
        body = checker.check(r, "/api/compare")
        assert body["error"]["code"] == "bad_request"
        assert named in body["error"]["message"], (params, body)
    # Repeated parameters are refused too.
    r = served.client.get("/api/compare?window=1h&window=24h")
    assert r.status_code == 400 and "window given 2 times" in r.json()["error"]["message"]
    # ...and the agent still answers a good request with the documented shape.
    ok = served.get("/api/compare", params={"chainId": "1", "taskType": "wasm", "window": "24h"})
    assert ok.status_code == 200
    body = checker.check(ok, "/api/compare")
    assert body["window"] == "24h" and body["chains"][0]["chainId"] == 1
    assert checker.check(served.get("/api/compare"), "/api/compare")["window"] == "1h"


def test_a_peer_inventing_chains_and_task_types_cannot_grow_state_or_metrics(served):
    agent = served.agent
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    n = MAX_NETWORK_SERIES + 300
    for i in range(n):
        agent.store.enqueue_federation_task(
            FederationTaskRow(
                "node-attacker01",
                f"global-task-{i:012x}",
                "task_completed",
                1000 + i,
                None,
                f"t{i}",
                "completed",
                100,
                at,
                now_ms(),
            )
        )
    assert agent.store.flush(10.0)
    assert agent.compare.events_added == n
    assert len(agent.compare.network) <= MAX_NETWORK_SERIES
    metrics = served.get("/metrics").text
    chains = {
        line.split('chain="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("monitor_agent_compare_verdict{")
    }
    assert 0 < len(chains) <= MAX_METRIC_CHAINS
    assert served.get("/api/compare").status_code == 200
