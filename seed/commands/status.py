"""`seedctl status`: which local seed servers run, are healthy, and with which config digest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import lifecycle
from ._options import handle_errors, open_spec, server_option, spec_option, state_option


@click.command("status")
@spec_option
@server_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def command(spec_path: Path, servers: tuple[str, ...], state_dir: Path | None, as_json: bool) -> None:
    """Show pid, health (/healthz) and config digest (/varz) of each local server.

    Exit code 0 when every selected server runs and is healthy, else 1.

    \b
    Examples:
      seedctl status --spec configs/seed.example.yaml
      seedctl status --spec configs/seed.cluster.example.yaml --json
    """
    spec = open_spec(spec_path, servers)
    states = lifecycle.status(spec, list(servers) or None, state_dir)
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in states], indent=2))
    else:
        for s in states:
            if s.running:
                health = "healthy" if s.healthy else "UNHEALTHY"
                click.echo(f"{s.name}: running pid {s.pid}, {health}, {s.client_url}, config {s.digest}")
            else:
                click.echo(f"{s.name}: stopped{' (' + s.detail + ')' if s.detail else ''}; log {s.log_path}")
    sys.exit(0 if all(s.healthy for s in states) else 1)
