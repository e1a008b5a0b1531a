"""`seedctl down`: stop local seed servers through lame-duck mode."""

from __future__ import annotations

from pathlib import Path

import click

from .. import lifecycle
from ._options import handle_errors, open_spec, server_option, spec_option, state_option


@click.command("down")
@spec_option
@server_option
@state_option
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds to wait for exit before SIGTERM/SIGKILL. Default: lame_duck_duration_s + 5.",
)
@click.option("--now", is_flag=True, help="Skip lame duck: SIGTERM right away (clients are cut off).")
@handle_errors
def command(
    spec_path: Path, servers: tuple[str, ...], state_dir: Path | None, timeout: float | None, now: bool
) -> None:
    """Stop the local seed server(s).

    Sends SIGUSR2 (lame-duck mode: stop accepting clients, move connected monitors off
    gradually over lame_duck_duration_s so they reconnect to another seed), then waits
    for the exit; SIGTERM and SIGKILL only if it lingers past --timeout.

    \b
    Examples:
      seedctl down --spec configs/seed.example.yaml
      seedctl down --spec configs/seed.cluster.example.yaml --server seed-3 --now
    """
    spec = open_spec(spec_path, servers)
    lifecycle.down(spec, list(servers) or None, state_dir, timeout, lame_duck=not now, progress=click.echo)
