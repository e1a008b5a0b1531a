"""`/ws`: hello, live events, Origin check, client cap, and a stalled client dropped while others go on."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import websocket  # websocket-client

from monitor_agent.web import WebOptions

from .conftest import add_federation_tasks, local_event


def connect(running, **kw) -> websocket.WebSocket:
    return websocket.create_connection(running.ws_url, timeout=5, **kw)


def next_of(ws, type_: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        msg = json.loads(ws.recv())
        if msg["type"] == type_:
            return msg
    raise AssertionError(f"no {type_} message within {timeout}s")


def test_hello_then_local_and_federation_events(agent_factory, openapi):
    a = agent_factory()
    ws = connect(a)
    try:
        hello = json.loads(ws.recv())
        assert hello["type"] == "hello"
        openapi.check_schema("Status", hello["data"]["status"])
        assert hello["data"]["status"]["nodeId"] == a.agent.status()["nodeId"]

        a.agent.submit_task_event(local_event("received", "0b7c1d2e-1111-4000-8000-00000000000a", chain_id=1))
        local = next_of(ws, "local_task")["data"]
        assert local["status"] == "received" and local["chainId"] == 1
        openapi.check_schema("LocalTask", local)
        assert "executionId" not in local and "private" not in local, "the feed is public: no execution ids"

        add_federation_tasks(a.agent, [{"task_id": "global-task-00000000abcd", "chain": 43114, "ms": 77}])
        task = next_of(ws, "federation_task")["data"]
        assert task == {
            "taskId": "global-task-00000000abcd",
            "chainId": 43114,
            "blockNumber": 18_950_234,
            "taskType": "wasm",
            "status": "completed",
            "executionTimeMs": 77,
            "sourceNode": "node-aaaaaaaaaa",
        }  # the seed documentation's payload
    finally:
        ws.close()


def test_origin_is_checked(agent_factory):
    a = agent_factory({"MONITOR_WS_ORIGINS": "http://dashboard.example:8443"}, start=False)
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        connect(a, origin="http://evil.example")
    assert exc.value.status_code == 403
    assert b"MONITOR_WS_ORIGINS" in (exc.value.resp_body or b"")
    for ok in (
        {"origin": a.base_url},
        {"origin": "http://dashboard.example:8443"},
        {"suppress_origin": True},
    ):
        ws = connect(a, **ok)
        assert json.loads(ws.recv())["type"] == "hello"
        ws.close()
    r = a.get("/ws")
    assert r.status_code == 400 and "WebSocket" in r.json()["error"]["message"]


def test_client_cap_answers_503(agent_factory):
    a = agent_factory(start=False, web_options=WebOptions(ws_max_clients=2))
    first, second = connect(a), connect(a)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as exc:
            connect(a)
        assert exc.value.status_code == 503
    finally:
        first.close()
        second.close()
    deadline = time.monotonic() + 5
    while a.app.extensions["monitor_agent"].ws_clients and time.monotonic() < deadline:
        time.sleep(0.05)
    connect(a).close()  # slots are given back


@pytest.mark.slow
def test_stalled_client_is_dropped_while_a_reading_client_keeps_receiving(agent_factory):
    # A queue of 2000 events: the reading client may lag 2 s on a busy machine and still keep up.
    options = WebOptions(ws_queue_size=2000, ws_send_timeout_s=2.0, ws_send_buffer=32 * 1024)
    a = agent_factory(start=False, web_options=options)
    web = a.app.extensions["monitor_agent"]
    # The stalled client: a tiny receive window, and it never reads.
    stalled = connect(a, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    reader = connect(a)
    # The hello is sent once the client's subscription exists: after it, no event can be missed.
    assert json.loads(stalled.recv())["type"] == "hello"
    assert json.loads(reader.recv())["type"] == "hello"
    got: list[int] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                msg = json.loads(reader.recv())
                if msg["type"] == "federation_task":
                    got.append(msg["data"]["seq"])
        except Exception:
            pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert web.ws_clients == 2
        padding = "x" * 1000
        total = 5000
        for seq in range(total):
            a.agent.bus.publish("federation_task", {"seq": seq, "pad": padding})
            if seq % 10 == 9:
                time.sleep(0.01)  # ~1000 events/s: a reading client keeps up, a stalled one cannot
            if seq % 100 == 99:  # a CPU-starved reader is paced, never outrun (it is not the one stalled)
                end = time.monotonic() + 10
                while len(got) < seq - 1000 and time.monotonic() < end:
                    time.sleep(0.01)
        deadline = time.monotonic() + 15
        while (web.ws_clients > 1 or len(got) < total) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert web.ws_clients == 1, "the stalled client was dropped"
        assert sum(web.ws_dropped.values()) == 1 and set(web.ws_dropped) <= {
            "client too slow",
            "send timeout",
        }
        assert got == list(range(total)), "the reading client got every event, in order"
        metrics = a.get("/metrics").text
        assert "monitor_agent_websocket_clients 1.0" in metrics
        assert "monitor_agent_websocket_dropped_total{reason=" in metrics
    finally:
        done.set()
        reader.close()
        stalled.close()


def test_shutdown_closes_clients_with_going_away(agent_factory):
    a = agent_factory()
    ws = connect(a)
    assert json.loads(ws.recv())["type"] == "hello"
    a.app.extensions["monitor_agent"].shutting_down.set()
    ws.settimeout(5)
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame[:2], "big") == 1001
    ws.close()


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        ({"Connection": "Upgrade"}, 400, "Sec-WebSocket-Version"),  # no version, no key
        ({"Connection": "Upgrade", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "x"}, 426, "13"),
        ({"Connection": "Upgrade", "Sec-WebSocket-Version": "13"}, 400, "Sec-WebSocket-Key"),
        (
            {"Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "garbage"},
            400,
            "Key",
        ),
        ({"Connection": "keep-alive", "Sec-WebSocket-Version": "13"}, 400, "Connection"),
    ],
)
def test_broken_handshake_is_a_4xx_naming_the_header(agent_factory, headers, status, needle):
    a = agent_factory(start=False)
    r = a.get("/ws", headers={"Upgrade": "websocket", **headers})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    if status == 426:
        assert r.headers["Sec-WebSocket-Version"] == "13"
    ws = connect(a)  # the server is fine and its client slot was given back
    assert json.loads(ws.recv())["type"] == "hello"
    ws.close()
    assert a.get("/api/health").status_code == 200
