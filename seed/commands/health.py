"""`seedctl health`: check every seed of the spec; Nagios exit codes for cron, Nagios or systemd."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from seed.health import DigestOracle, Status, Thresholds, remember, run_health
from seed.health import memory as health_memory
from seed.health.exposition import render_text
from seed.health.output import format_json, format_text, overall

from ._options import spec_option


def _unknown(message: str) -> NoReturn:
    """Nagios UNKNOWN: one line on stdout (what the monitoring system shows), exit 3."""
    click.echo(f"SEEDS UNKNOWN - {message}")
    sys.exit(int(Status.UNKNOWN))


@click.command("health")
@spec_option
@click.option(
    "--server", "servers", multiple=True, metavar="NAME", help="Check only this server (repeatable)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "prometheus"]),
    default="text",
    show_default=True,
    help="text: summary line + table; json: everything; prometheus: textfile-collector metrics.",
)
@click.option(
    "--timeout", type=click.FloatRange(0.1, 60), default=2.0, show_default=True, help="Per request, s."
)
@click.option(
    "--via",
    type=click.Choice(["http", "nats", "auto"]),
    default="auto",
    show_default=True,
    help="http: each seed's monitoring port; nats: the system account ($SYS.REQ.SERVER.PING.*) "
    "over a client port, as the admin user, so 8222 stays on 127.0.0.1; auto: http when every "
    "seed's monitoring is loopback on this host, else nats.",
)
@click.option("--quiet", "-q", is_flag=True, help="Text: list only the checks that are not OK.")
@click.option("--no-drift", is_flag=True, help="Skip the config drift check (no render, no nats-server -t).")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the previous run's figures are kept  [default: <state_dir>/.health-last.json].",
)
@click.option("--stateless", is_flag=True, help="Neither read nor write the previous run's figures.")
@click.option(
    "--conn-warn", type=click.IntRange(1, 100), default=80, show_default=True, help="% of max_connections."
)
@click.option(
    "--conn-crit", type=click.IntRange(1, 100), default=95, show_default=True, help="% of max_connections."
)
@click.option("--cert-warn-days", type=click.FloatRange(0), default=21, show_default=True)
@click.option("--cert-crit-days", type=click.FloatRange(0), default=7, show_default=True)
@click.option(
    "--restart-window",
    type=click.FloatRange(0),
    default=600,
    show_default=True,
    help="Seconds a restart seen since the last run stays a WARNING (0: never warn).",
)
@click.option(
    "--history-warn",
    type=click.IntRange(1, 100),
    default=80,
    show_default=True,
    help="% of history.max_bytes the history stream may fill (spec history: only).",
)
@click.option(
    "--history-crit",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="% of history.max_bytes (past it older events go before max_age).",
)
def command(
    spec_path, servers, fmt, timeout, via, quiet, no_drift, state_file, stateless, conn_warn, conn_crit,
    cert_warn_days, cert_crit_days, restart_window, history_warn, history_crit,
):  # fmt: skip
    """Check the health of the spec's seed servers over their monitoring endpoints
    (HTTP on 8222, or the same data through the system account over NATS: --via).

    \b
    Checks per server: reachable, healthz, connections vs max_connections,
    slow consumers and stale connections rising since the last run, memory,
    CPU, topology (live routes vs the spec's cluster peers), config drift
    (running config_digest vs what `seedctl render` produces now), TLS
    certificate expiry, recent restart, version skew in the cluster, and
    federation traffic on tbfed.v1.>. With `history:` in the spec, also the
    history stream: present with a leader elected, every replica current
    (none lagging or offline), storage used vs history.max_bytes.

    \b
    Exit code (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. The first line
    of text output is the summary a monitoring system shows, e.g. in cron:
      */5 * * * *  seedctl health --spec /etc/seedctl/seed.yaml -q || mail ...
    """
    from seed.spec import SpecError, load_spec

    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        _unknown(str(exc))
    unknown = [n for n in servers if n not in spec.names]
    if unknown:
        _unknown(
            f"no server named {', '.join(map(repr, unknown))} in {spec.path} (servers: {', '.join(spec.names)})"
        )
    if conn_warn > conn_crit or cert_crit_days > cert_warn_days or history_warn > history_crit:
        _unknown(
            "warning thresholds must be below critical ones (--conn-warn <= --conn-crit, "
            "--history-warn <= --history-crit, cert days reversed)"
        )
    thresholds = Thresholds(
        conn_warn=conn_warn / 100,
        conn_crit=conn_crit / 100,
        cert_warn_days=cert_warn_days,
        cert_crit_days=cert_crit_days,
        restart_window_s=restart_window,
        history_warn=history_warn / 100,
        history_crit=history_crit / 100,
    )
    mem_path = None if stateless else (state_file or health_memory.default_path(spec))
    memory = health_memory.load(mem_path)
    reports = run_health(
        spec,
        list(servers) or None,
        memory=memory,
        oracle=None if no_drift else DigestOracle(),
        thresholds=thresholds,
        timeout=timeout,
        via=via,
    )
    health_memory.save(mem_path, remember(memory, reports))
    if fmt == "json":
        click.echo(format_json(reports))
    elif fmt == "prometheus":
        click.echo(render_text(reports), nl=False)
    else:
        click.echo(format_text(reports, verbose=not quiet))
    sys.exit(int(overall(reports)))
