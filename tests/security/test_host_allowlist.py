"""DNS rebinding against the real `monitor-agent run` and `seedctl console`.

The attack: a page on a name the attacker controls (`rebind.test`) resolves that name to
127.0.0.1, then reads the dashboard's API and opens /ws as if they were its own site. The
request carries `Host: rebind.test` (and `Origin: http://rebind.test:PORT` for /ws), so the
defence is a Host allow-list on every route, and a WebSocket Origin check against that list.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.plugins.tools import CHROMIUM_ARGS, http_get

EVIL = "rebind.test"


@pytest.fixture(scope="module")
def agent(agent_process_factory):
    return agent_process_factory({"MONITOR_ALLOWED_HOSTS": "monitor.lan, 192.0.2.7"})


@pytest.fixture(scope="module")
def console(console_process_factory):
    return console_process_factory("--allowed-host", "console.lan")


def agent_routes(agent) -> list[tuple[str, str]]:
    """(method, path) of every route: the OpenAPI document's operations plus the non-API ones."""
    doc = http_get(f"{agent.base_url}/api/openapi.json", timeout=5).json()
    routes = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m in ("get", "post")]
    routes += [("GET", "/"), ("GET", "/metrics"), ("GET", "/static/app.js"), ("GET", "/no-such-page")]
    assert len(routes) >= 14, routes
    return routes


def ws_handshake(port: int, host: str, origin: str | None) -> bytes:
    """A raw RFC 6455 upgrade request; the status line (and headers) of the answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096)


@pytest.mark.slow
def test_foreign_host_gets_421_on_every_agent_route(agent):
    foreign = {"Host": f"{EVIL}:{agent.port}", "Authorization": f"Bearer {agent.token}"}
    with httpx.Client(base_url=agent.base_url, timeout=5, trust_env=False) as client:
        for method, path in agent_routes(agent):
            body = {"json": {}} if method == "POST" else {}
            r = client.request(method, path.replace("{", "").replace("}", ""), headers=foreign, **body)
            assert r.status_code == 421, (method, path, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "misdirected_request"
            assert "MONITOR_ALLOWED_HOSTS" in r.json()["error"]["message"]
        # Nothing was changed or erased by the refused writes.
        assert client.get("/api/federation/settings").json()["enabled"] is False


@pytest.mark.slow
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "monitor.lan", "192.0.2.7"])
def test_loopback_and_listed_names_are_served(agent, host):
    r = http_get(f"{agent.base_url}/api/privacy", headers={"Host": f"{host}:{agent.port}"}, timeout=5)
    assert r.status_code == 200, r.text


@pytest.mark.slow
def test_websocket_from_a_rebound_page_is_refused(agent):
    port = agent.port
    # The rebinding page: Host and Origin are both the attacker's name.
    answer = ws_handshake(port, f"{EVIL}:{port}", f"http://{EVIL}:{port}")
    assert answer.startswith(b"HTTP/1.1 421"), answer[:200]
    # A foreign page talking to a loopback Host: the Origin is checked against the list.
    answer = ws_handshake(port, f"127.0.0.1:{port}", f"http://{EVIL}:{port}")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    # The dashboard itself, under a loopback name or a listed one.
    for name in ("127.0.0.1", "localhost", "monitor.lan"):
        answer = ws_handshake(port, f"{name}:{port}", f"http://{name}:{port}")
        assert answer.startswith(b"HTTP/1.1 101"), (name, answer[:200])


@pytest.mark.slow
def test_rebinding_in_chromium_reads_nothing(agent, chromium_path):
    """A real browser resolving the attacker's name to 127.0.0.1 (what rebinding achieves)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=args, headless=True)
        try:
            page = browser.new_page()
            resp = page.goto(f"http://{EVIL}:{agent.port}/api/privacy")
            assert resp.status == 421, resp.text()[:200]
            result = page.evaluate(
                """(url) => new Promise((resolve) => {
                    const ws = new WebSocket(url);
                    ws.onopen = () => resolve("open");
                    ws.onerror = () => resolve("refused");
                    setTimeout(() => resolve("timeout"), 5000);
                })""",
                f"ws://{EVIL}:{agent.port}/ws",
            )
            assert result == "refused"
        finally:
            browser.close()


@pytest.mark.slow
def test_foreign_host_gets_421_on_every_console_route(console):
    foreign = {"Host": f"{EVIL}:{console.port}"}
    routes = [("GET", p) for p in ("/", "/login", "/healthz", "/metrics", "/cluster", "/alerts", "/server/seed-1",
              "/api/seeds", "/api/seeds/seed-1/health", "/api/seeds/seed-1/history", "/static/console.css",
              "/no-such-page")] + [("POST", "/login"), ("POST", "/logout")]  # fmt: skip
    with httpx.Client(base_url=console.base_url, timeout=5, trust_env=False) as client:
        for method, path in routes:
            r = client.request(method, path, headers=foreign)
            assert r.status_code == 421, (method, path, r.status_code, r.text[:200])
        for name in ("127.0.0.1", "localhost", "console.lan"):
            r = client.get("/login", headers={"Host": f"{name}:{console.port}"})
            assert r.status_code == 200, (name, r.status_code)


def test_malformed_allowed_hosts_stop_the_agent_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "FEDERATION_"))}
    env.update(
        DATA_DIR=str(tmp_path), NODE_LOG_SOURCE="none", MONITOR_ALLOWED_HOSTS="http://monitor.lan:8090"
    )
    r = subprocess.run([str(Path(sys.executable).parent / "monitor-agent"), "run"], env=env,
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "MONITOR_ALLOWED_HOSTS" in lines[0] and "http://monitor.lan:8090" in lines[0]
