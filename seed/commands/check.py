"""`seedctl check`: nats-server -t on every rendered config, then the hardening audit."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from .. import natsbin
from .. import render as _render
from ..audit import SEVERITIES, audit
from ._options import binary_option, fail, handle_errors, open_spec, server_option, spec_option


@click.command("check")
@spec_option
@server_option
@binary_option
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="high",
    show_default=True,
    help="Exit 1 when a finding of this severity (or worse) is present.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def command(
    spec_path: Path, servers: tuple[str, ...], binary: str | None, fail_on: str, as_json: bool
) -> None:
    """Validate each server's config with `nats-server -t` and audit hardening.

    Renders the spec (in a private temporary dir), runs `nats-server -t -c` on each
    config and prints the config digest it reports; then lists findings, each with a
    severity and a fix: routes open to any server (`cluster.auth: none`: CRITICAL), routes
    on a non-loopback address without cluster.tls (HIGH), TLS off or self-signed on a public
    address, monitoring port beyond 127.0.0.1, a user without permissions, a plaintext password, an oversized max_payload,
    no system account, secret files readable by others.

    \b
    Exit codes: 0 valid and no finding at --fail-on or worse; 1 invalid config or such a
    finding; 2 invalid spec.
    \b
    Examples:
      seedctl check --spec configs/seed.example.yaml
      seedctl check --spec prod.yaml --fail-on medium --json
    """
    spec = open_spec(spec_path, servers)
    results: dict[str, dict] = {}
    rendered: dict[str, str] = {}
    invalid = False
    with tempfile.TemporaryDirectory(prefix="seedctl-check-") as tmp:
        written = _render.render_all(spec, Path(tmp), list(servers) or None)
        for name, path in written.items():
            rendered[name] = path.read_text(encoding="utf-8")
            try:
                digest = natsbin.validate(path, binary)
                results[name] = {"valid": True, "digest": digest}
            except natsbin.NatsServerError as exc:
                invalid = True
                results[name] = {
                    "valid": False,
                    "error": str(exc).replace(str(path), f"{name}/nats-server.conf"),
                }
            stale = spec.rendered_dir / name / _render.CONF_NAME
            results[name]["rendered_file"] = str(stale)
            results[name]["rendered_up_to_date"] = stale.is_file() and stale.read_text() == rendered[name]
    findings = audit(spec, rendered)
    threshold = SEVERITIES.index(fail_on) if fail_on != "never" else -1
    failing = [f for f in findings if SEVERITIES.index(f.severity) <= threshold]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "servers": results,
                    "findings": [
                        {"severity": f.severity, "where": f.where, "problem": f.problem, "fix": f.fix}
                        for f in findings
                    ],
                    "ok": not invalid and not failing,
                },
                indent=2,
            )
        )
    else:
        for name, r in results.items():
            if r["valid"]:
                note = ""
                if not r["rendered_up_to_date"]:
                    state = (
                        "differs from the spec" if Path(r["rendered_file"]).is_file() else "not rendered yet"
                    )
                    note = f" (note: {r['rendered_file']} {state}: seedctl render)"
                click.echo(f"{name}: valid ({r['digest']}){note}")
            else:
                click.echo(f"{name}: INVALID: {r['error']}")
        if findings:
            click.echo(f"{len(findings)} hardening finding(s):")
            for f in findings:
                click.echo(f"  {f.line()}")
        else:
            click.echo("hardening: no findings")
    if invalid:
        fail("nats-server refused the configuration", 1)
    if failing:
        fail(f"{len(failing)} finding(s) at severity {fail_on} or worse", 1)
