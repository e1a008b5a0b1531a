"""`seedctl render`: spec -> one nats-server.conf per server."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render as _render
from .. import users
from ._options import handle_errors, open_spec, server_option, spec_option


@click.command("render")
@spec_option
@server_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output directory. Default: the spec's rendered_dir (configs/rendered for the example).",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the config(s) instead of writing files.")
@handle_errors
def command(spec_path: Path, servers: tuple[str, ...], out: Path | None, to_stdout: bool) -> None:
    """Render one nats-server config per server from the spec.

    Files are written atomically with mode 0600 (they hold bcrypt password hashes) to
    <out>/<server>/nats-server.conf. Missing passwords are generated into the secrets dir.

    \b
    Examples:
      seedctl render --spec configs/seed.example.yaml
      seedctl render --spec configs/seed.cluster.example.yaml --server seed-2 --stdout
    """
    spec = open_spec(spec_path, servers)
    if to_stdout:
        hashes = users.all_hashes(spec)
        for server in spec.servers:
            if not servers or server.name in servers:
                click.echo(_render.render_server(spec, server, hashes), nl=False)
        return
    written = _render.render_all(spec, out, list(servers) or None)
    for name, path in written.items():
        click.echo(f"{name}: wrote {path}")
