"""`seedctl reload`: apply a changed spec to running servers, and prove it."""

from __future__ import annotations

from pathlib import Path

import click

from .. import lifecycle
from ._options import binary_option, handle_errors, open_spec, server_option, spec_option, state_option


@click.command("reload")
@spec_option
@server_option
@binary_option
@state_option
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the new config_digest.")
@handle_errors
def command(
    spec_path: Path, servers: tuple[str, ...], binary: str | None, state_dir: Path | None, timeout: float
) -> None:
    """Re-render, validate, and hot-reload running servers (SIGHUP), then verify.

    Steps: render -> `nats-server -t` (digest) -> refuse changes nats-server cannot
    reload (client/cluster/monitoring listen address or port, server name, cluster name,
    system account: "restart required: <what>") -> SIGHUP -> poll /varz until its
    config_digest equals the digest from -t, or fail with the server's own log line.
    Nothing is touched on any server when one of them needs a restart.

    \b
    Examples:
      seedctl users add node-a3f7c9d2e1 --role enrolled && seedctl reload
      seedctl reload --spec configs/seed.cluster.example.yaml --server seed-1
    """
    spec = open_spec(spec_path, servers)
    lifecycle.reload(spec, list(servers) or None, state_dir, binary, timeout, progress=click.echo)
