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
@click.option(
    "--via",
    type=click.Choice(["signal", "nats"]),
    default="signal",
    show_default=True,
    help="signal: SIGHUP to the local process; nats: $SYS.REQ.SERVER.<id>.RELOAD as the admin user over "
    "a client port (also for seeds on other hosts whose config is already in place, e.g. by Ansible).",
)
@handle_errors
def command(
    spec_path: Path,
    servers: tuple[str, ...],
    binary: str | None,
    state_dir: Path | None,
    timeout: float,
    via: str,
) -> None:
    """Re-render, validate, and hot-reload running servers (SIGHUP), then verify.

    Steps: render -> `nats-server -t` (digest) -> refuse changes nats-server cannot
    reload (client/cluster/monitoring listen address or port, server name, cluster name,
    system account: "restart required: <what>") -> SIGHUP -> poll /varz until its
    config_digest equals the digest from -t, or fail with the server's own log line.
    Nothing is touched on any server when one of them needs a restart.

    With --via nats the reload is asked of each server through the system account and
    proven by the config_digest its VARZ reports over $SYS; a seed not run from this
    state dir (another host) must already have the rendered config in place.

    \b
    Examples:
      seedctl users add node-a3f7c9d2e1 --role enrolled && seedctl reload
      seedctl reload --spec configs/seed.cluster.example.yaml --server seed-1
      seedctl reload --spec prod.yaml --via nats     # seeds on other hosts, configs placed by Ansible
    """
    spec = open_spec(spec_path, servers)
    lifecycle.reload(spec, list(servers) or None, state_dir, binary, timeout, progress=click.echo, via=via)
    if spec.history is not None:  # spec `history:`: the task-event stream exists with the spec's limits
        from .. import history

        stream = history.ensure_stream(spec, timeout=max(timeout, 30.0))
        if stream is not None:
            click.echo(history.describe(stream, spec))
