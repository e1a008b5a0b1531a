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

# Parallel runs (pytest-xdist: `python -m pytest -n 2 --dist loadgroup`; CI runs serially): a module's tests stay
# together on one worker (module-scoped fixtures start once), and the tests that share one costly
# session resource run on one worker each: the fleet lab (one lab per session) and the podman
# images and Engine API (one build per session).
_SHARED_SESSION = {
    "lab": {"lab", "fleet", "seeds", "monitors"},
    "containers": {"podman", "base_image", "agent_image", "engine_api"},
}


# Under -n, the longest groups are handed out first, so neither worker is left alone with a long one at the
# end: the lab (~7 min on a busy 2-core machine), the container images, then the Ansible modules.
_FIRST = ("lab", "containers", "tests/ansible/")


def _rank(group: str) -> int:
    return next((i for i, g in enumerate(_FIRST) if group.startswith(g)), len(_FIRST))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is None:
            names = set(getattr(item, "fixturenames", ()))
            group = next((g for g, fx in _SHARED_SESSION.items() if names & fx), None)
            marker = pytest.mark.xdist_group(group or item.nodeid.split("::", 1)[0])
            item.add_marker(marker)
            groups[item] = marker.args[0]
        else:
            groups[item] = marker.args[0] if marker.args else marker.kwargs.get("name", "")
    if getattr(config.option, "numprocesses", None):  # only on workers: serial runs keep file order
        items.sort(key=lambda item: _rank(groups[item]))  # stable: a module's tests keep their order
