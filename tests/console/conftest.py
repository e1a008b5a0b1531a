"""Console fixtures: the real Flask app in a real threaded WSGI server (werkzeug) on loopback."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from werkzeug.serving import make_server

from seed.console import create_app
from seed.monitoring import tls_context


@dataclass
class Console:
    app: object
    base_url: str
    password: str
    metrics_token: str

    @property
    def sampler(self):
        return self.app.extensions["sampler"]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, follow_redirects=False, timeout=10, trust_env=False, verify=tls_context()
        )

    def login(self, client: httpx.Client | None = None) -> httpx.Client:
        client = client or self.client()
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        resp = client.post("/login", data={"csrf_token": token, "password": self.password, "next": "/"})
        assert resp.status_code == 302, resp.text
        return client

    def wait_rounds(self, n: int, timeout: float = 15.0) -> None:
        """Wait until the sampler finished `n` more rounds."""
        target = self.sampler.rounds + n
        deadline = time.monotonic() + timeout
        while self.sampler.rounds < target:
            if time.monotonic() > deadline:
                pytest.fail(f"sampler did not finish {n} rounds in {timeout}s")
            self.sampler.poke()
            time.sleep(0.05)


@pytest.fixture
def console_factory(tmp_path_factory):
    """make(seed_handle, interval=0.5, db_path=None) -> Console; servers and samplers stop at teardown."""
    running = []

    def make(handle, *, interval: float = 0.5, db_path=None, refresh_s: float | None = None) -> Console:
        db_path = db_path or tmp_path_factory.mktemp("console") / "console.db"
        app = create_app(handle.spec_path, db_path=db_path, interval=interval, refresh_s=refresh_s)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread, app))
        secrets_dir = handle.spec.secrets_dir
        return Console(
            app=app,
            base_url=f"http://127.0.0.1:{server.server_port}",
            password=(secrets_dir / "console.password").read_text().strip(),
            metrics_token=(secrets_dir / "console-metrics.password").read_text().strip(),
        )

    yield make
    for server, thread, app in running:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions["sampler"].stop()


@pytest.fixture
def console(seed, console_factory) -> Console:
    """A console over the single started `seed`, after its first sampling round."""
    c = console_factory(seed)
    c.wait_rounds(1)
    return c
