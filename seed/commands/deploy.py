"""`seedctl deploy`: provision real hosts with the Ansible roles in seed/ansible/ (shipped in the package), through ansible-runner."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import deploy as _deploy
from ._options import fail, handle_errors, open_spec, spec_option


@click.command("deploy")
@spec_option
@click.option(
    "--inventory",
    "-i",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    envvar="SEEDCTL_INVENTORY",
    help="Ansible inventory: group nats_seeds (hosts named like the spec's servers) and group monitors. "
    "Env: SEEDCTL_INVENTORY.",
)
@click.option(
    "--playbook",
    type=click.Choice(list(_deploy.PLAYBOOKS)),
    default="seed",
    show_default=True,
    help="seed: install/configure the seeds; monitor: the agents; rolling-restart: one seed at a time; "
    "rotate-credentials: new monitor user without cutting anyone off.",
)
@click.option("--check", is_flag=True, help="Change nothing: show the config diff each host would get.")
@click.option("--limit", metavar="HOST", default=None, help="Only these hosts (an Ansible host pattern).")
@click.option("--forks", default=10, show_default=True, help="Hosts worked on in parallel.")
@click.option("--show-skipped", is_flag=True, help="Also print tasks skipped on a host.")
@click.option("--new-user", default=None, help="rotate-credentials: name of the new monitor user.")
@click.option(
    "--routes",
    is_flag=True,
    help="rotate-credentials: a new cluster route password, moved to one seed at a time (mesh kept whole).",
)
@click.option(
    "--old-user", default="monitor", show_default=True, help="rotate-credentials: the user it replaces."
)
@click.option(
    "--grace-period",
    default=60,
    show_default=True,
    help="rotate-credentials: seconds between moving the monitors and removing the old user.",
)
@click.option(
    "--ansible-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Where the playbooks and roles are. Default: {_deploy.ANSIBLE_DIR}.",
)
@click.option("-v", "--verbose", "verbosity", count=True, help="Pass -v (repeatable) to ansible-playbook.")
@handle_errors
def command(
    spec_path: Path,
    inventory: Path,
    playbook: str,
    check: bool,
    limit: str | None,
    forks: int,
    show_skipped: bool,
    new_user: str | None,
    routes: bool,
    old_user: str,
    grace_period: int,
    ansible_dir: Path | None,
    verbosity: int,
) -> None:
    """Run a playbook of seed/ansible/ against an inventory, with the spec's settings.

    Each seed host gets the config `seedctl render` would write (same template, same
    bytes), validated by `nats-server -t` before it replaces the old one, applied by reload
    (SIGHUP, proven by /varz config_digest) or, only for changes nats-server cannot reload,
    by a lame-duck restart; then /healthz and the route mesh are checked. Progress: a line
    per task and host, a summary table, and each failure with host, task and message.

    Exit code: ansible-playbook's (0 ok, 2 a host failed, 4 a host unreachable); 2 also for
    an invalid spec, before anything runs.

    \b
    Examples:
      seedctl deploy --spec seed.yaml -i seed/ansible/inventory.example.yml --check
      seedctl deploy --spec seed.yaml -i inv.yml
      seedctl deploy --spec seed.yaml -i inv.yml --playbook monitor --limit truebit-node-a
      seedctl deploy --spec seed.yaml -i inv.yml --playbook rolling-restart
      seedctl deploy --spec seed.yaml -i inv.yml --playbook rotate-credentials --new-user monitor-2
      seedctl deploy --spec seed.yaml -i inv.yml --playbook rotate-credentials --routes
    """
    spec = open_spec(spec_path)
    extra = None
    if playbook == "rotate-credentials":
        if bool(new_user) == routes:
            fail(
                "--playbook rotate-credentials needs --new-user NAME (the monitor user replacing --old-user) "
                "or --routes (a new route password), one rotation at a time",
                2,
            )
        try:
            if routes:
                extra = _deploy.route_rotation_vars(spec, create=not check)
            else:
                assert new_user is not None  # checked above: --routes or --new-user
                extra = _deploy.rotation_vars(spec, old_user, new_user, grace_period, create=not check)
        except (_deploy.DeployError, _deploy.secrets.SecretError) as exc:
            fail(str(exc), 2)
    mode = " (check mode: nothing changes)" if check else ""
    click.echo(f"seedctl deploy: playbook {playbook}, inventory {inventory}{mode}")
    try:
        result = _deploy.deploy(
            spec,
            inventory,
            playbook,
            check=check,
            limit=limit,
            out=click.echo,
            extra=extra,
            ansible_dir=ansible_dir,
            forks=forks,
            verbosity=verbosity,
            show_skipped=show_skipped,
        )
    except _deploy.DeployError as exc:
        fail(str(exc))
    if result.ok and playbook == "rotate-credentials" and not check:
        click.echo(_deploy.finish_route_rotation(spec) if routes else _deploy.finish_rotation(spec, old_user))
    if result.ok and playbook == "seed" and spec.history is not None and not check:
        # Spec `history:`: the task-event stream exists with the spec's limits (as `seedctl up/reload`).
        from .. import history

        if limit:
            click.echo("history: stream not checked (--limit): run `seedctl reload` once every seed has JetStream")
        else:
            try:
                state = history.ensure_stream(spec)
            except history.HistoryError as exc:
                fail(str(exc))
            if state is not None:
                click.echo(history.describe(state, spec))
    if result.ok and playbook == "seed" and spec.auth.operator and not check:
        from .. import enroll  # operator mode: the seeds get the current account JWTs (revocations)

        for name, outcome in enroll.push(spec).items():
            click.echo(f"account JWTs -> {name}: {outcome}")
    sys.exit(result.rc)
