"""`seedctl`: the operator's front door. Each subcommand lives in seed/commands/<name>.py
and exposes a click command (or group) named `command`; this module only gathers them."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

from . import __version__
from . import commands as _commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="seedctl")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens in detail (to stderr).")
def cli(verbose: bool) -> None:
    """Provision, secure, run and health-check the NATS seed servers of a TrueBit
    monitor federation.

    \b
    Typical flow:
      seedctl users add monitor --spec configs/seed.example.yaml
      seedctl render --spec configs/seed.example.yaml
      seedctl check  --spec configs/seed.example.yaml
      seedctl up     --spec configs/seed.example.yaml
      seedctl health --spec configs/seed.example.yaml
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if command is not None:
            cli.add_command(command)


_register()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
