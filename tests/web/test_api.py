"""API contract: every endpoint of PROTOCOL.md §6 plus the local side, against a live agent,
each response validated against the agent's own OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from openapi_spec_validator import validate as validate_spec

from monitor_agent.config import SETTINGS_FILE
from tests.plugins.tools import wait_for


def test_openapi_document_is_valid_openapi_3_1(agent_factory):
    running = agent_factory(start=False)
    doc = running.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)
    for path in (
        "/api/federation/status",
        "/api/federation/tasks/global",
        "/api/federation/peers",
        "/api/federation/settings",
        "/api/federation/clear",
        "/api/tasks",
        "/api/stats",
        "/api/health",
        "/api/ready",
    ):
        assert path in doc["paths"], path
    # Every JSON route the app serves is in the document, with its response shape among the
    # schemas generated from web/shapes.py (the types the handlers answer with).
    schemas = doc["components"]["schemas"]
    routes = [
        (rule.rule, method.lower())
        for rule in running.app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    ]
    assert len(routes) >= 12
    for path, method in routes:
        op = doc["paths"][path][method]
        ok = op["responses"]["200"]["content"]["application/json"]
        if path == "/api/openapi.json":
            continue
        name = ok["schema"]["$ref"].rsplit("/", 1)[1]
        assert name in schemas and schemas[name]["type"] == "object", (path, method)
        assert schemas[name]["properties"] and schemas[name]["additionalProperties"] is False
    assert set(routes) == {(p, m) for p, ops in doc["paths"].items() for m in ops}


def test_federation_endpoints_answer_what_the_document_says(seeded_agent, openapi):
    a = seeded_agent
    status = openapi.check(a.get("/api/federation/status"))
    assert status["enabled"] is False and status["state"] == "DISABLED" and status["connected"] is False
    assert status["nodeId"].startswith("node-")
    assert status["stats"]["tasks24h"] == 30

    body = openapi.check(a.get("/api/federation/tasks/global"))
    assert body["total"] == 30 and len(body["tasks"]) == 30
    received = [t["receivedAt"] for t in body["tasks"]]
    assert received == sorted(received, reverse=True), "newest first"
    assert set(body["tasks"][0]) == {
        "taskId", "chainId", "blockNumber", "taskType", "status", "executionTimeMs", "receivedAt", "sourceNode"
    }  # fmt: skip

    body = openapi.check(a.get("/api/federation/tasks/global", params={"limit": 5, "chainId": 43113}))
    assert body["total"] == 10, "total counts every row matching the filters, not the page"
    assert len(body["tasks"]) == 5 and {t["chainId"] for t in body["tasks"]} == {43113}

    since = (datetime.now(UTC) - timedelta(minutes=10, seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = openapi.check(a.get("/api/federation/tasks/global", params={"since": since}))
    assert body["total"] == 10
    assert all(t["receivedAt"] > since for t in body["tasks"])

    peers = openapi.check(a.get("/api/federation/peers"))
    assert peers["total"] == 2
    by_id = {p["nodeId"]: p for p in peers["peers"]}
    assert by_id["node-aaaaaaaaaa"]["online"] is True and by_id["node-aaaaaaaaaa"]["region"] == "EU-WEST"
    assert by_id["node-bbbbbbbbbb"]["online"] is False

    settings = openapi.check(a.get("/api/federation/settings"))
    assert settings["enabled"] is False and settings["nodeId"] == status["nodeId"]


def test_local_endpoints_and_private_fields_need_the_token(seeded_agent, openapi):
    a = seeded_agent
    public = openapi.check(a.get("/api/tasks"))
    assert public["total"] == 3 and public["private"] is False
    dumped = json.dumps(public)
    assert "6f1c2b9e" not in dumped and "0xcdcd" not in dumped and "js_abab" not in dumped
    assert {t["status"] for t in public["tasks"]} == {"completed", "failed", "received"}

    private = openapi.check(a.get("/api/tasks", auth=True))
    assert private["private"] is True
    first = next(t for t in private["tasks"] if t["executionId"].endswith("0001"))
    assert first["private"]["blockHash"] == "0x" + "cd" * 32

    wrong = a.get("/api/tasks", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    openapi.check(wrong)

    failed = openapi.check(a.get("/api/tasks", params={"status": "failed"}))
    assert failed["total"] == 1 and failed["tasks"][0]["exitCode"] == 3
    page = openapi.check(a.get("/api/tasks", params={"limit": 1, "offset": 1}))
    assert page["total"] == 3 and len(page["tasks"]) == 1

    stats = openapi.check(a.get("/api/stats"))
    assert stats["total"] == 3
    assert stats["byStatus"]["completed"] == 1 and stats["byStatus"]["failed"] == 1
    assert stats["activeTasks"] == 1


def test_health_ready_metrics(seeded_agent, openapi):
    a = seeded_agent
    assert openapi.check(a.get("/api/health"))["status"] == "ok"
    ready = openapi.check(a.get("/api/ready"))
    assert ready == {
        "ready": True,
        "database": "writable",
        "federation": {"enabled": False, "state": "DISABLED"},
    }
    text = a.get("/metrics").text
    for needle in (
        'monitor_agent_tasks{status="completed"} 1.0',
        'monitor_agent_tasks{status="failed"} 1.0',
        'federation_state{state="DISABLED"} 1.0',
        "monitor_agent_websocket_clients 0.0",
        "federation_messages_received",
        "federation_messages_published",
        "federation_messages_dropped",
        "federation_errors",
    ):
        assert needle in text, needle


BAD = [
    ("/api/federation/tasks/global?limit=abc", "limit"),
    ("/api/federation/tasks/global?limit=100000", "limit"),
    ("/api/federation/tasks/global?limit=0", "limit"),
    ("/api/federation/tasks/global?since=yesterday", "since"),
    ("/api/federation/tasks/global?chainId=-1", "chainId"),
    ("/api/federation/tasks/global?chainId=99999999999999999999999", "chainId"),
    ("/api/federation/tasks/global?chainId=1&chainId=2", "chainId"),
    ("/api/federation/tasks/global?chain=1", "chain"),
    ("/api/tasks?status=done", "status"),
    ("/api/tasks?offset=-3", "offset"),
    ("/api/tasks?limit=1e3", "limit"),
    ("/api/federation/peers?verbose=1", "verbose"),
]


@pytest.mark.parametrize(("url", "named"), BAD)
def test_every_bad_parameter_is_a_400_naming_it(agent_factory, openapi, url, named):
    a = agent_factory(start=False)
    r = a.get(url)
    assert r.status_code == 400, r.text
    body = openapi.check(r, path=r.request.url.path)
    assert body["error"]["code"] == "bad_request"
    assert named in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"enabled": "true"}, "enabled"),
        ({"broadcastTasks": 1}, "broadcastTasks"),
        ({"receiveEnabled": None}, "receiveEnabled"),
        ({"enabled": True, "nodeId": "node-x"}, "nodeId"),
        ({}, "no settings"),
        ([True], "JSON object"),
    ],
)
def test_bad_settings_bodies(agent_factory, openapi, body, named):
    a = agent_factory(start=False)
    r = a.post("/api/federation/settings", json=body)
    assert r.status_code == 400
    assert named in openapi.check(r)["error"]["message"]
    assert not (a.config.data_dir / SETTINGS_FILE).exists(), "a refused change persists nothing"


def test_raw_bodies_size_limits_and_unknown_paths(agent_factory, openapi):
    a = agent_factory(start=False)
    h = {**a.auth_headers, "Content-Type": "application/json"}
    for raw, needle in ((b"{", "not valid JSON"), (b"\xff", "UTF-8"), (b"[" * 50_00, "JSON")):
        r = a.client.post("/api/federation/settings", content=raw, headers=h)
        assert r.status_code == 400 and needle in openapi.check(r)["error"]["message"]
    r = a.client.post("/api/federation/settings", content=b'{"enabled": true}', headers={**a.auth_headers})
    assert r.status_code == 400 and "Content-Type" in r.json()["error"]["message"]
    r = a.client.post("/api/federation/settings", content=b" " * 20_000 + b"{}", headers=h)
    assert r.status_code == 413 and openapi.check(r)["error"]["code"] == "payload_too_large"
    r = a.get("/api/federation/tasks/global?since=" + "9" * 5000)
    assert r.status_code == 414 and r.json()["error"]["code"] == "uri_too_long"
    r = a.post("/api/federation/clear", json={"everything": True})
    assert r.status_code == 400 and "everything" in r.json()["error"]["message"]

    for path in ("/api/nope", "/nope", "/api/federation/tasks/global/1"):
        r = a.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = a.client.delete("/api/federation/settings")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_write_endpoints_need_the_token(agent_factory, openapi):
    a = agent_factory(start=False)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Basic {a.token}"},
    ):
        for path, body in (("/api/federation/settings", {"enabled": True}), ("/api/federation/clear", None)):
            r = a.client.post(path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert openapi.check(r)["error"]["code"] == "unauthorized"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert not (a.config.data_dir / SETTINGS_FILE).exists()


def test_generated_token_is_written_to_data_dir(agent_factory, tmp_path):
    a = agent_factory({"MONITOR_API_TOKEN": ""}, start=False)
    token_file = a.config.data_dir / "api-token"
    assert token_file.read_text().strip() == a.token
    assert token_file.stat().st_mode & 0o077 == 0
    assert a.post("/api/federation/clear").status_code == 200


def test_settings_apply_live_persist_and_answer_restart_required(agent_factory, port_factory, openapi):
    # A seed URL where nothing listens: enabling federation moves it out of DISABLED at once.
    a = agent_factory({"FEDERATION_SEED_URL": f"nats://127.0.0.1:{port_factory()}"})
    r = a.post("/api/federation/settings", json={"enabled": True, "broadcastStats": False})
    body = openapi.check(r)
    assert body["enabled"] is True and body["broadcastStats"] is False and body["restartRequired"] is False
    persisted = json.loads((a.config.data_dir / SETTINGS_FILE).read_text())
    assert persisted == {"enabled": True, "broadcastStats": False}
    status = a.get("/api/federation/status").json()
    assert status["enabled"] is True and status["state"] in ("CONNECTING", "RECONNECTING", "ERROR")
    assert openapi.check(a.get("/api/federation/settings"))["broadcastStats"] is False

    body = openapi.check(a.post("/api/federation/settings", json={"enabled": False}))
    assert body["enabled"] is False
    assert a.get("/api/federation/status").json()["state"] == "DISABLED"


def test_clear_deletes_every_received_row_and_peer(seeded_agent, openapi):
    a = seeded_agent
    body = openapi.check(a.post("/api/federation/clear"))
    assert body == {"deleted": {"tasks": 30, "peers": 2}}
    assert a.get("/api/federation/tasks/global").json()["total"] == 0
    assert a.get("/api/federation/peers").json()["total"] == 0
    assert a.get("/api/tasks").json()["total"] == 3, "the node's own history stays"


def test_a_database_fault_is_a_logged_503_and_the_server_keeps_answering(agent_factory, openapi, caplog):
    a = agent_factory(start=False)
    a.agent.store.close()  # what a vanished or broken database file looks like to the web layer
    r = a.get("/api/federation/tasks/global")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert "database" in r.json()["error"]["message"]
    assert any("database error" in rec.getMessage() for rec in caplog.records)
    ready = a.get("/api/ready")
    assert ready.status_code == 503 and openapi.check(ready)["ready"] is False
    assert a.get("/api/health").status_code == 200, "liveness is not readiness"


def test_privacy_outbox_shows_payload_and_headers_exactly_as_the_wire_carries_them(
    agent_factory, seed, openapi
):
    """What an observer on the seed receives is what /api/privacy and the Privacy tab show, headers too."""
    import asyncio
    import time

    import nats

    from .conftest import local_event

    async def capture():
        nc = await nats.connect(seed.url_for("observer"))
        try:
            sub = await nc.subscribe("tbfed.v1.task.>")
            await nc.flush()  # the seed holds the subscription before the agent publishes
            a = agent_factory({"ENABLE_FEDERATION": "true", "FEDERATION_SEED_URL": seed.url_for("monitor")})
            deadline = time.monotonic() + 10
            while not a.agent.status()["connected"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            a.agent.submit_task_event(
                local_event("received", "0b7c1d2e-2222-4000-8000-00000000000b", chain_id=1)
            )
            return a, await sub.next_msg(timeout=10)
        finally:
            await nc.close()

    a, wire = asyncio.run(capture())

    def in_outbox() -> list[dict]:
        body = openapi.check(a.get("/api/privacy"))
        return [m for m in body["outbox"] if m["payload"] == wire.data.decode()]

    # The outbox lists a message once the seed has confirmed it (its PONG), which may come a moment
    # after the observer already holds the message.
    sent = wait_for(in_outbox, timeout=5, what="the message on the wire in the outbox")
    assert sent[0]["headers"] == dict(wire.headers) and set(wire.headers) == {"Tbf-Key", "Tbf-Sig"}
    page = a.get("/privacy").text
    assert f"Tbf-Key: {wire.headers['Tbf-Key']}" in page  # the Privacy tab shows the headers too
