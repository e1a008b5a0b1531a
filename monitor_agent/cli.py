"""`monitor-agent`: the node operator's CLI. Each subcommand lives in
monitor_agent/commands/<name>.py and exposes a click command named `command`."""

from __future__ import annotations

import logging
import sys

import click

from . import __version__
from . import commands as _commands
from .lazy_cli import LazyGroup


@click.group(
    cls=LazyGroup,
    commands_package=_commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="monitor-agent")
def cli() -> None:
    """Watch a TrueBit node's tasks locally and, only if you opt in
    (ENABLE_FEDERATION=true), share anonymized, signed task events with a federation.

    All settings come from environment variables (see `docs/PROTOCOL.md` §7);
    a malformed value stops start-up with one line naming it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


if __name__ == "__main__":
    main()
