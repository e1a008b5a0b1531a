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

import os  # noqa: E402

import pytest  # noqa: E402

# Parallel runs (pytest-xdist: `-n 2 --dist loadgroup` in pyproject's addopts). xdist's own grouping (the
# `xdist_group` mark) no longer works with pytest 9 (it renames `item._nodeid`, which pytest 9 no
# longer reads), so the grouping is ours: the controller's scheduler below sends each group to one
# worker whole. A group is a module (its module-scoped fixtures start once), except that the tests
# sharing one costly session resource form one group each: the fleet lab (one lab per session,
# never two booted side by side) and the podman images and Engine API (one build per session).
_SHARED_SESSION = {
    "lab": {"lab", "fleet", "seeds", "monitors"},
    "containers": {"podman", "base_image", "agent_image", "engine_api"},
}
# The controller sees node ids only, not fixtures: which modules hold those tests. Collection checks
# this against the fixtures each test really uses, and stops naming a module that is missing.
_GROUP_MODULES = {
    "lab": ("tests/lab/",),
    "containers": (
        "tests/containers/test_compose_run.py",
        "tests/containers/test_image.py",
        "tests/ingest/test_docker_source.py",
        "tests/security/test_container_lockdown.py",
    ),
    # `seedctl demo` takes its well-known ports (4222, 8222, 8090...) when they are free: two demos
    # started on two workers at once could both find them free. One worker runs every demo.
    "demo": ("tests/demo/test_demo.py", "tests/docs/test_docs_run.py"),
}
# The longest groups go first, so neither worker is left alone with a long one at the end: the lab
# (~7 min on a busy 2-core machine), the container images, then the Ansible modules.
_FIRST = ("lab", "containers", "tests/ansible/")


def group_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return next((g for g, mods in _GROUP_MODULES.items() if module.startswith(mods)), module)


def _rank(group: str) -> int:
    return next((i for i, g in enumerate(_FIRST) if group.startswith(g)), len(_FIRST))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    wrong = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        needs = next((g for g, fx in _SHARED_SESSION.items() if names & fx), None)
        if needs and group_of(item.nodeid) != needs:
            wrong.add(f"{item.nodeid.split('::', 1)[0]} (uses the {needs} fixtures)")
    if wrong:
        raise pytest.UsageError(f"tests/conftest.py _GROUP_MODULES is missing: {', '.join(sorted(wrong))}")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A worker's collection order is the order the controller hands groups out in (the
        # controller collects nothing itself). Serial runs (`-n 0`) keep file order: with the lab
        # first, its hosts would run beside every later test.
        items.sort(key=lambda item: _rank(group_of(item.nodeid)))  # stable: a module keeps its order


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    config.option.loadscopereorder = False  # keep the order above, not the largest group first
    return GroupScheduling(config, log)
