"""Agent fixtures (owned by the monitor agent web work): real agents served in-process.

    agent_factory -> make(env: dict | None = None, *, start=True, web_options=None) -> RunningAgent
        Config from monitor_agent.config.load_config(env) with DATA_DIR in a fresh tmp dir,
        NODE_LOG_SOURCE=none unless given, MONITOR_PORT free, MONITOR_API_TOKEN generated unless
        given. Starts the real Agent (start=True) and serves create_app(agent) on 127.0.0.1 with
        werkzeug's threaded server in a thread.
    RunningAgent: .agent, .config, .app, .base_url ("http://127.0.0.1:P"), .ws_url, .token,
        .get(path, **kw) / .post(path, json=..., auth=True, **kw) via httpx, .stop()

Everything made is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from seed.monitoring import tls_context


@dataclass
class RunningAgent:
    agent: Any
    config: Any
    app: Any
    server: Any
    thread: threading.Thread
    token: str
    client: httpx.Client = field(repr=False)
    started: bool = True
    stopped: bool = False

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, *, auth: bool = False, **kw) -> httpx.Response:
        if auth:
            kw["headers"] = {**kw.get("headers", {}), **self.auth_headers}
        return self.client.get(path, **kw)

    def post(self, path: str, json: Any = None, *, auth: bool = True, **kw) -> httpx.Response:
        if auth:
            kw["headers"] = {**kw.get("headers", {}), **self.auth_headers}
        if json is not None:
            kw["json"] = json
        return self.client.post(path, **kw)

    def stop(self) -> None:
        """Close WebSocket clients, stop serving, then stop the agent (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        web = self.app.extensions["monitor_agent"]
        web.shutting_down.set()
        try:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
        finally:
            self.client.close()
            if self.started:
                self.agent.stop()


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0):
    """werkzeug's threaded WSGI server for `app`, serving from a daemon thread."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    # A short poll interval: shutdown() waits up to one interval (tests stop many servers).
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"wsgi:{server.server_port}",
        daemon=True,
    )
    thread.start()
    return server, thread


@pytest.fixture
def agent_factory(tmp_path_factory, port_factory):
    """Start real agents with their web app; all are stopped at teardown."""
    from monitor_agent.agent import Agent
    from monitor_agent.config import load_config
    from monitor_agent.web import create_app

    made: list[RunningAgent] = []

    def make(env: dict | None = None, *, start: bool = True, web_options: Any = None) -> RunningAgent:
        env = dict(env or {})
        env.setdefault("DATA_DIR", str(tmp_path_factory.mktemp("agent")))
        env.setdefault("NODE_LOG_SOURCE", "none")
        env.setdefault("MONITOR_PORT", str(port_factory()))
        env.setdefault("MONITOR_API_TOKEN", secrets.token_urlsafe(24))
        config = load_config(env)
        agent = Agent(config)
        if start:
            agent.start()
        try:
            app = create_app(agent, options=web_options)
            server, thread = serve_in_thread(app, "127.0.0.1", config.monitor_port)
        except BaseException:
            if start:
                agent.stop()
            raise
        token = app.extensions["monitor_agent"].token
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", timeout=10, verify=tls_context())
        running = RunningAgent(agent, config, app, server, thread, token, client, started=start)
        made.append(running)
        return running

    yield make
    for running in reversed(made):
        with contextlib.suppress(Exception):
            running.stop()
