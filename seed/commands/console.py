"""`seedctl console`: the Flask health console of the seeds, served by gunicorn."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import EXIT_SPEC, fail, spec_option


@click.command("console")
@spec_option
@click.option("--host", help="Listen address  [default: console.host of the spec, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Listen port  [default: console.port of the spec, 8300]."
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="History database  [default: <state_dir>/console.db].",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    help="Seconds between samples  [default: console.sample_interval_s].",
)
@click.option(
    "--secure-cookies", is_flag=True, help="Mark the session cookie Secure (behind an HTTPS proxy)."
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (repeatable; e.g. the name of your HTTPS proxy). "
    "Loopback names, the bind address and console.allowed_hosts of the spec always work.",
)
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
@click.option(
    "--via",
    type=click.Choice(["http", "nats", "auto"]),
    default="auto",
    show_default=True,
    help="How seeds are sampled: http (monitoring ports), nats (system account over a client port: "
    "the console may run on any host, 8222 stays on 127.0.0.1), auto (http when all are loopback here).",
)
def command(spec_path, host, port, db, interval, secure_cookies, allowed_hosts, access_log, via):
    """Run the health console: seed cards, checks, history charts, route mesh, alerts,
    a JSON API and Prometheus /metrics, behind an operator login.

    \b
    The operator password is <secrets_dir>/console.password (generated on first run);
    Prometheus scrapes /metrics with the bearer token in <secrets_dir>/console-metrics.password.
    It binds 127.0.0.1 by default: reach it through an SSH tunnel, e.g.
      ssh -L 8300:127.0.0.1:8300 seed-host   then open http://127.0.0.1:8300/

    \b
    Examples:
      seedctl console --spec configs/seed.example.yaml
      seedctl console --spec prod.yaml --port 8400 --interval 30
      seedctl console --spec prod.yaml --secure-cookies --allowed-host console.example.org
                                                            # behind an HTTPS reverse proxy
      curl -H "Authorization: Bearer $(cat secrets/console-metrics.password)" http://127.0.0.1:8300/metrics
    """
    from monitor_agent.web.hosts import normalize_host
    from seed.console import create_app
    from seed.console.serve import serve
    from seed.secrets import SecretError
    from seed.spec import SpecError, is_loopback, load_spec

    for name in allowed_hosts:
        if normalize_host(name) is None:
            fail(f"console: --allowed-host {name!r}: expected a host name or IP address (no port, no scheme)",
                 EXIT_SPEC)  # fmt: skip
    try:
        spec = load_spec(spec_path)
        host = host or spec.console.host
        app = create_app(
            spec_path,
            db_path=db,
            interval=interval,
            start_sampler=False,
            secure_cookies=secure_cookies,
            bind_host=host,
            allowed_hosts=allowed_hosts,
            via=via,
        )
    except (SpecError, SecretError, OSError) as exc:
        fail(f"console: {exc}", EXIT_SPEC)
    port = port or spec.console.port
    if not is_loopback(host):
        click.echo(
            f"seedctl console: warning: listening on {host}, not loopback: put it behind HTTPS "
            "(and pass --secure-cookies) or use an SSH tunnel; browsers must use a loopback name, "
            "the bind address or a name given with --allowed-host (else 421)",
            err=True,
        )
    url_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"seed console for {spec.name} on http://{url_host}:{port}/ "
        f"(sampling {len(spec.servers)} seed(s) every {app.extensions['sampler'].interval:g} s "
        f"via {via}; "
        f"password in {spec.secrets_dir / 'console.password'})",
        err=True,
    )
    serve(app, f"{url_host}:{port}", access_log=access_log)
