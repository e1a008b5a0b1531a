"""`monitor-agent run` for real: one process (gunicorn's gthread worker, no master), federation on a real seed,
WebSocket clients, then SIGTERM -> node_offline sent, clients closed, database closed cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import psutil
import pytest
import websocket

from tests.plugins.tools import http_get

MONITOR_AGENT = str(Path(sys.executable).parent / "monitor-agent")


def agent_env(tmp_path, port, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_"))}
    env.update({"DATA_DIR": str(tmp_path / "data"), "MONITOR_PORT": str(port), "NODE_LOG_SOURCE": "none"})
    env.update(extra)
    return env


def test_config_error_is_one_line_and_exit_2(tmp_path, port_factory):
    r = subprocess.run(
        [MONITOR_AGENT, "run"],
        env=agent_env(tmp_path, port_factory(), FEDERATION_REGION="MARS"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "FEDERATION_REGION" in lines[0] and "MARS" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


def test_port_in_use_is_one_line(tmp_path, port_factory):
    port = port_factory()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = subprocess.run(
            [MONITOR_AGENT, "run"], env=agent_env(tmp_path, port), capture_output=True, text=True, timeout=30
        )
    assert r.returncode == 2 and f"MONITOR_PORT={port} is already in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_unusable_database_stops_with_a_clear_line(tmp_path, port_factory):
    data = tmp_path / "data"
    data.mkdir()
    (data / "truebit-monitor.db").write_bytes(b"this is not a database" * 100)
    r = subprocess.run(
        [MONITOR_AGENT, "run"],
        env=agent_env(tmp_path, port_factory()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "FED_006" in r.stderr and "could not start" in r.stderr
    assert "Traceback" not in r.stderr
    assert (data / "truebit-monitor.db").read_bytes().startswith(b"this is not"), "nothing overwritten"


async def _wait_connected(base: str, proc: subprocess.Popen, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"monitor-agent exited early with {proc.returncode}")
            try:
                status = (await client.get("/api/federation/status")).json()
                if status["state"] == "CONNECTED":
                    return status
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("agent never reported CONNECTED")


@pytest.mark.slow
def test_run_serves_under_gunicorn_and_stops_gracefully(tmp_path, port_factory, seed):
    port = port_factory()
    env = agent_env(
        tmp_path,
        port,
        ENABLE_FEDERATION="true",
        FEDERATION_SEED_URL=seed.url_for("monitor"),
        FEDERATION_REGION="EU-WEST",
    )
    log_path = tmp_path / "agent.log"

    async def scenario() -> tuple[list[dict], int, list[int]]:
        nc = await nats.connect(seed.url_for("monitor"))
        sub = await nc.subscribe("tbfed.v1.presence.>")
        with log_path.open("w") as log:
            proc = subprocess.Popen([MONITOR_AGENT, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            status = await _wait_connected(f"http://127.0.0.1:{port}", proc)
            # One process serves (no gunicorn master): what `ps` and systemd show is the agent.
            assert psutil.Process(proc.pid).children(recursive=True) == []
            # Three live dashboards: each holds a gthread thread; the API still answers.
            clients = [websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5) for _ in range(3)]
            for ws in clients:
                assert json.loads(ws.recv())["type"] == "hello"
            r = http_get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            assert r.status_code == 200
            proc.send_signal(signal.SIGTERM)
            presence: list[dict] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(p["event"] == "node_offline" for p in presence):
                try:
                    msg = await sub.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                body = json.loads(msg.data)
                if body["nodeId"] == status["nodeId"]:
                    presence.append(body)
            codes = []
            for ws in clients:
                ws.settimeout(5)
                # Events sent before the stop (a stats or status change on a slow machine) come
                # first; the close frame must follow them.
                opcode, frame = ws.recv_data(control_frame=True)
                while opcode == websocket.ABNF.OPCODE_TEXT:
                    opcode, frame = ws.recv_data(control_frame=True)
                codes.append(
                    int.from_bytes(frame[:2], "big") if opcode == websocket.ABNF.OPCODE_CLOSE else -1
                )
                ws.close()
            rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20)
            return presence, rc, codes
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await nc.close()

    presence, rc, codes = asyncio.run(scenario())
    output = log_path.read_text()
    assert rc == 0, output
    assert [p["event"] for p in presence][-1] == "node_offline", presence
    assert presence[0]["region"] == "EU-WEST"
    assert codes == [1001, 1001, 1001], "WebSocket clients told the agent is going away"
    assert "agent stopped" in output and "Traceback" not in output
    assert f"127.0.0.1:{port}" in output, "bound to loopback by default"
    db = tmp_path / "data" / "truebit-monitor.db"
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
