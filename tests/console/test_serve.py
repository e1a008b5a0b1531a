"""`seedctl console` for real: one process serving the console, started and stopped like an operator would."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from seed.supervisor import Child


@pytest.mark.slow
def test_seedctl_console_serves_behind_login_and_stops_cleanly(seed, port_factory, tmp_path):
    port = port_factory()
    cmd = [str(Path(sys.executable).parent / "seedctl"), "console", "--spec", str(seed.spec_path),
           "--port", str(port), "--interval", "1", "--db", str(tmp_path / "c.db")]  # fmt: skip
    proc = Child("seedctl console", cmd, tmp_path / "console.log").start()
    try:
        base = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{base}/healthz", 20)
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as c:
            assert c.get("/").status_code == 302
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
            password = (seed.spec.secrets_dir / "console.password").read_text().strip()
            assert c.post("/login", data={"csrf_token": token, "password": password}).status_code == 302
            deadline = time.monotonic() + 15
            while not c.get("/api/seeds").json()["seeds"]:  # the sampler starts with the server
                assert time.monotonic() < deadline, "no sample from the console"
                time.sleep(0.2)
            assert c.get("/api/seeds").json()["seeds"][0]["status"] == "OK"
            assert psutil.Process(proc.pid).children() == [], "one process: no gunicorn master"
    finally:
        proc.stop(15)
    err = proc.output()
    assert proc.returncode == 0, err
    assert f"seed console for tbfed-test on http://127.0.0.1:{port}/" in err
    assert "Traceback" not in err


def test_seedctl_console_bad_spec_is_one_line(tmp_path):
    bad = tmp_path / "seed.yaml"
    bad.write_text("servers: []\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "seedctl"), "console", "--spec", str(bad)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"seedctl: console: {bad}:1: servers: a list of at least one server is required"
    ]
