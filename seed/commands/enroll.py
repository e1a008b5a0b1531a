"""`seedctl enroll approve|renew|list|revoke|push`: admit nodes by their own key (seed/enroll.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from ._options import fail, handle_errors, open_spec, spec_option


@click.group("enroll")
def command() -> None:
    """Admit nodes by their own key: no shared secret, nothing secret sent to or from the node.

    The node operator runs `monitor-agent enroll-request --out req.json` and sends req.json.
    Static mode (spec auth.mode: static): `approve` adds an enrolled NKEY user for the node's key
    (publish only tbfed.v1.*.<nodeId>); apply with `seedctl reload` or `seedctl deploy`.
    Operator mode (auth.mode: operator): `approve` issues a user JWT, effective at once with no
    config change and no reload; `revoke` cuts the node off within seconds.
    Either way the node gets back a file holding only public material (FEDERATION_CREDENTIALS).

    \b
    Examples:
      seedctl enroll approve req.json --out ./to-node
      seedctl enroll list
      seedctl enroll renew node-a3f7c9d2e1 --out ./to-node
      seedctl enroll revoke node-a3f7c9d2e1
    """


def _enroll_errors(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from ..enroll import EnrollError

        try:
            return f(*args, **kwargs)
        except EnrollError as exc:
            fail(str(exc), 2)

    return handle_errors(wrapper)


def _out_option(f):
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Directory for the node's files (<nodeId>.jwt or .pub, <nodeId>.env). Default: enrolled/<nodeId> "
        "beside the spec.",
    )(f)


def _days_option(f):
    return click.option(
        "--days",
        type=click.IntRange(1, 3650),
        default=None,
        help="Operator mode: validity of the user JWT in days (default: the spec's auth.user_jwt_days, 90).",
    )(f)


@command.command("approve")
@spec_option
@click.argument("request", type=click.Path(dir_okay=False, path_type=Path))
@_out_option
@_days_option
@_enroll_errors
def approve_cmd(spec_path: Path, request: Path, out: Path | None, days: int | None) -> None:
    """Check REQUEST (signature, nodeId derived from its key) and admit that node."""
    from .. import enroll, render

    spec = open_spec(spec_path)
    body = enroll.read_request(request)  # a bad request is refused before anything is written
    down: list[str] = []
    if spec.auth.operator:
        _ok, down = enroll.check_resolvers(spec)  # a seed without our resolver would never accept it
        enroll.operator(spec, create=True)
    where = out or (spec.path.parent / "enrolled" / body["nodeId"])
    result = enroll.approve(spec, request, where, days)
    verb = "renewed" if result.renewed else "approved"
    if result.mode == "operator":
        click.echo(
            f"{result.node_id}: {verb} (key {result.key}); user JWT valid until {enroll.when(result.expires)}"
        )
        click.echo(f"send {result.credentials} and {result.env} to the node operator (no secret in them)")
        click.echo("effective now: no seed config change, no reload")
        if down:
            click.echo(f"note: seeds not reachable to check: {', '.join(down)}")
        return
    render.render_all(spec)
    click.echo(f"{result.node_id}: {verb} as an enrolled NKEY user (key {result.key}), config re-rendered")
    click.echo(f"send {result.credentials} and {result.env} to the node operator (no secret in them)")
    click.echo("apply to the seeds with: seedctl reload (or seedctl deploy)")


@command.command("renew")
@spec_option
@click.argument("node_id")
@_out_option
@_days_option
@_enroll_errors
def renew_cmd(spec_path: Path, node_id: str, out: Path | None, days: int | None) -> None:
    """Operator mode: issue NODE_ID a fresh user JWT before the old one expires.

    The old JWT keeps working until it expires; the agent switches to the new file as soon as
    the node operator puts it in place (it watches FEDERATION_CREDENTIALS), without downtime.
    """
    from .. import enroll

    spec = open_spec(spec_path)
    result = enroll.renew(spec, node_id, out or (spec.path.parent / "enrolled" / node_id), days)
    click.echo(f"{node_id}: renewed; user JWT valid until {enroll.when(result.expires)}")
    click.echo(f"send {result.credentials} to the node operator (it replaces the old file)")


@command.command("list")
@spec_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_enroll_errors
def list_cmd(spec_path: Path, as_json: bool) -> None:
    """Enrolled nodes: nodeId, key, mode, region, expiry, status (active|expiring|expired|revoked)."""
    from .. import enroll

    spec = open_spec(spec_path)
    rows = enroll.list_enrolled(spec)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no enrolled nodes (seedctl enroll approve REQUEST)")
        return
    for r in rows:
        click.echo(
            f"{r['nodeId']:<16} {r['status']:<8} {r['mode']:<8} {r['region']:<11} {r['expires']:<20} {r['key']}"
        )


@command.command("revoke")
@spec_option
@click.argument("node_id")
@_enroll_errors
def revoke_cmd(spec_path: Path, node_id: str) -> None:
    """Cut NODE_ID off: operator mode pushes the revocation to the running seeds (seconds);
    static mode removes its user from the config (then seedctl reload)."""
    from .. import enroll, render

    spec = open_spec(spec_path)
    entry, pushed = enroll.revoke(spec, node_id)
    if not spec.auth.operator:
        render.render_all(spec)
        click.echo(f"{node_id}: revoked, config re-rendered; apply with: seedctl reload (or seedctl deploy)")
        return
    ok = [s for s, r in pushed.items() if r == "updated"]
    click.echo(f"{node_id}: revoked (key {entry['key']}); seeds updated: {', '.join(ok) or 'none'}")
    for name, result in pushed.items():
        if result != "updated":
            click.echo(f"  {name}: {result}: run `seedctl enroll push` when it is back")
    if not ok:
        fail("no seed took the revocation yet (it is recorded): seedctl enroll push", 1)
    click.echo(
        "the seeds' config preloads the old account JWT until the next seedctl reload / deploy "
        "(health reports config_drift until then; the revocation is already in force)"
    )


@command.command("push")
@spec_option
@_enroll_errors
def push_cmd(spec_path: Path) -> None:
    """Operator mode: send the current account JWTs (revocations) to every seed."""
    from .. import enroll

    spec = open_spec(spec_path)
    results = enroll.push(spec)
    for name, result in results.items():
        click.echo(f"{name}: {result}")
    if any(r != "updated" for r in results.values()):
        fail("some seeds did not take the account JWTs", 1)
