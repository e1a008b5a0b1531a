"""`seedctl`: the operator's front door. Each subcommand lives in seed/commands/<name>.py
and exposes a click command (or group) named `command`; this module only gathers them."""

from __future__ import annotations

import importlib.util
import logging
import sys

import click

from monitor_agent.lazy_cli import LazyGroup

from . import __version__
from . import commands as _commands


@click.group(
    cls=LazyGroup,
    commands_package=_commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="seedctl")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens in detail (to stderr).")
def cli(verbose: bool) -> None:
    """Provision, secure, run and health-check the NATS seed servers of a TrueBit
    monitor federation.

    \b
    Typical flow:
      seedctl users add node-a3f7c9d2e1 --role enrolled --spec configs/seed.example.yaml
      seedctl render --spec configs/seed.example.yaml
      seedctl check  --spec configs/seed.example.yaml
      seedctl up     --spec configs/seed.example.yaml
      seedctl health --spec configs/seed.example.yaml
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# The `seed` extra's importable parts (distribution: module). The agent's base dependencies do
# not include them, so `seedctl` in an agent-only install says so in one line, not a traceback.
SEED_EXTRA_MODULES = {"PyYAML": "yaml", "bcrypt": "bcrypt", "ansible-runner": "ansible_runner", "ansible-core": "ansible"}
NEEDS_SEED_EXTRA = "seedctl needs the seed extra: pip install 'truebit-federation[seed]'"


def missing_seed_extra() -> list[str]:
    """Distributions of the `seed` extra this environment lacks (looked up, not imported)."""
    return [dist for dist, module in SEED_EXTRA_MODULES.items() if importlib.util.find_spec(module) is None]


def main() -> None:
    missing = missing_seed_extra()
    if missing:
        sys.exit(f"{NEEDS_SEED_EXTRA} (missing: {', '.join(missing)})")
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
