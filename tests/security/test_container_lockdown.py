"""An attacker who gets code execution inside the agent container (a parser bug, a poisoned
dependency) as the compose file runs it: read-only root filesystem, every capability dropped,
no-new-privileges, uid 10001. Each attack runs in the real container, as the agent's user.

Before issue 19 the image was never built or run (its base could not be fetched here), so none
of this was shown to hold."""

from __future__ import annotations

import uuid

import pytest

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

ATTACKS = {
    # Replace the agent's own code so the next start runs the attacker's.
    "overwrite the agent's code": "open('/opt/monitor-agent/bin/monitor-agent', 'a').write('#')",
    "drop a file anywhere outside the data volume": "open('/etc/cron.d/x', 'w').write('x')",
    "become root": "import os; os.setuid(0)",
    "take over another file's ownership": "import os; os.chown('/app/data', 0, 0)",
    "listen on a privileged port": "import socket; socket.socket().bind(('0.0.0.0', 80))",
    "use a raw socket (spoof packets)": "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)",
}


def test_code_execution_inside_the_agent_container_gains_nothing(podman, agent_image):
    name = f"tb-sec-{uuid.uuid4().hex[:8]}"
    podman.run(agent_image, "sleep", "300", name=name, options=(
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--entrypoint", "", "--network", "none", "--stop-signal", "KILL",
    ))  # fmt: skip
    try:
        _attack(podman, name)
    finally:
        podman("rm", "-f", "-v", "-t", "0", name, check=False)


def _attack(podman, name: str) -> None:
    succeeded = {}
    for what, code in ATTACKS.items():
        proc = podman("exec", name, "python", "-c", code, check=False)
        if proc.returncode == 0:
            succeeded[what] = proc.stdout
    assert succeeded == {}, f"attacks that worked inside the agent container: {sorted(succeeded)}"

    status = dict(
        line.split(":", 1) for line in podman("exec", name, "cat", "/proc/self/status").stdout.splitlines()
    )
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap].strip(), 16) == 0, f"{cap} = {status[cap].strip()}"
    assert status["NoNewPrivs"].strip() == "1"  # a setuid binary cannot raise privileges either
    assert status["Uid"].split()[:2] == ["10001", "10001"]
    # The one writable place is the agent's own data (and /tmp).
    assert (
        podman(
            "exec", name, "python", "-c", "open('/app/data/probe', 'w').write('x')", check=False
        ).returncode
        == 0
    )
