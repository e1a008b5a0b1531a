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

import pytest  # noqa: E402

# Parallel runs (pytest-xdist, `--dist loadgroup` in pyproject's addopts): a module's tests stay
# together on one worker (module-scoped fixtures start once), and the tests that share one costly
# session resource run on one worker each: the fleet lab (one lab per session) and the podman
# images and Engine API (one build per session).
_SHARED_SESSION = {
    "lab": {"lab", "fleet", "seeds", "monitors"},
    "containers": {"podman", "base_image", "agent_image", "engine_api"},
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        names = set(getattr(item, "fixturenames", ()))
        group = next((g for g, fx in _SHARED_SESSION.items() if names & fx), None)
        item.add_marker(pytest.mark.xdist_group(group or item.nodeid.split("::", 1)[0]))
