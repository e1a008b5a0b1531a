"""Shared test set-up. Fixtures live in tests/plugins/, one module per area:

- tools: free ports, required external tools (fail in CI, skip elsewhere), Chromium via Playwright
- seed: real nats-server seeds started through seedctl's own code
- agent: real monitor agents (in-process or subprocess)
- processes: `monitor-agent run` and `seedctl console` as real processes (attack tests)
- containers: podman: the Debian base and agent images, the Docker Engine API, node containers
- lab: one fleet lab of throwaway systemd hosts per session (tests/lab)
"""

pytest_plugins = [
    "tests.plugins.tools",
    "tests.plugins.seed",
    "tests.plugins.agent",
    "tests.plugins.processes",
    "tests.plugins.containers",
    "tests.plugins.lab",
]
