"""`seedctl users add|remove|list|credentials`: NATS users and their secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from monitor_agent.files import write_private
from monitor_agent.protocol import NODE_ID_RE

from .. import secrets, users
from ..users import ADDABLE_ROLES
from ._options import fail, handle_errors, open_spec, spec_option


@click.group("users")
def command() -> None:
    """Manage NATS users and their credentials (secrets dir next to the spec).

    Users come from the spec's `users:` list and from `seedctl users add` (kept in
    <secrets_dir>/users.json). Passwords are generated (32 chars), stored 0600 and only
    their bcrypt hashes reach the server config. An nkey user (`--auth nkey`, spec
    `auth: nkey`) has an Ed25519 seed (<name>.nk, 0600) instead and the config holds
    only its public key: no bcrypt per connection, so hundreds of monitors can reconnect
    at once. Apply changes with `seedctl reload`.

    \b
    Examples:
      seedctl users list
      seedctl users add node-a3f7c9d2e1 --role enrolled && seedctl reload
      seedctl users add node-a3f7c9d2e1 --auth nkey && seedctl reload
      seedctl users credentials monitor --out ./monitor-creds
      seedctl users remove node-a3f7c9d2e1 && seedctl reload
    """


def _static_only(spec) -> None:
    if spec.auth.operator:
        fail("the spec is in operator mode: users are JWTs there; nodes join with `seedctl enroll approve`", 2)


def _describe(spec, user) -> str:
    perms = users.permissions(user, spec.subject_prefix)
    parts = []
    for verb in ("publish", "subscribe"):
        rules = perms.get(verb, {})
        text = ", ".join(f"{'!' if kind == 'deny' else ''}{s}" for kind, subs in rules.items() for s in subs)
        parts.append(f"{verb}: {text or '-'}")
    return "; ".join(parts)


@command.command("list")
@spec_option
@click.option(
    "--show-passwords",
    is_flag=True,
    help="Also print each password or nkey seed (careful: terminal history).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def list_users(spec_path: Path, show_passwords: bool, as_json: bool) -> None:
    """List users: name, role, auth (password|nkey), where declared, permissions (secrets only if asked)."""
    spec = open_spec(spec_path)
    declared = {u.name for u in spec.users}
    effective = users.effective_users(spec)
    rows = []
    for u in effective:
        row: dict[str, Any] = {
            "name": u.name,
            "role": u.role,
            "auth": u.auth,
            "source": "spec" if u.name in declared else "added",
            "permissions": users.permissions(u, spec.subject_prefix),
        }
        if u.auth == "nkey":
            # The public key is not a secret: show it (operators match it against /connz).
            has_nkey = users.has_nkey(spec.secrets_dir, u.name)
            row["nkey"] = (
                users.nkey_public(spec.secrets_dir, u.name, create=False) if has_nkey else "generated on next render"
            )
            if show_passwords and has_nkey:
                row["seed"] = users.nkey_seed(spec.secrets_dir, u.name, create=False)
        else:
            has_password = users.has_password(spec, u)
            row["password"] = "set" if has_password else "generated on next render"
            if show_passwords and has_password:
                row["password"] = users.user_password(spec, u, create=False)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    by_name = {u.name: u for u in effective}
    for row in rows:
        secret = f"password {row['password']}" if row["auth"] == "password" else f"nkey {row['nkey']}"
        click.echo(f"{row['name']:<20} {row['role']:<9} {row['auth']:<8} {row['source']:<6} {secret}")
        if "seed" in row:
            click.echo(f"{'':<20} seed {row['seed']}")
        click.echo(f"{'':<20} {_describe(spec, by_name[row['name']])}")


@command.command("add")
@spec_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ADDABLE_ROLES),
    default=None,
    help="monitor (shared, any node id), observer (read-only) or enrolled (NAME is the nodeId: "
    "may publish only tbfed.v1.*.NAME). Default: enrolled if NAME looks like a nodeId.",
)
@click.option(
    "--auth",
    type=click.Choice(users.AUTH_KINDS),
    default=None,
    help="password (bcrypt, the default) or nkey (Ed25519 seed in NAME.nk: no bcrypt per connection; "
    "for users with many connections, like a shared monitor user). Spec users: set `auth:` in the spec.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of generating one."
)
@click.option("--show-password", is_flag=True, help="Print the password (or nkey seed) once created.")
@handle_errors
def add_user(
    spec_path: Path, name: str, role: str | None, auth: str | None, password_stdin: bool, show_password: bool
) -> None:
    """Create NAME's credentials (or make sure a spec user has them).

    \b
    Examples:
      seedctl users add node-a3f7c9d2e1                 # enrolled node user
      seedctl users add node-a3f7c9d2e1 --auth nkey     # ... authenticating with an nkey
      seedctl users add grafana --role observer
      pwgen -s 40 1 | seedctl users add monitor --password-stdin
    """
    spec = open_spec(spec_path)
    _static_only(spec)
    declared = spec.user(name)
    if declared is not None:
        if role and role != declared.role:
            fail(f"{name} is declared in {spec_path} with role {declared.role}; change it there", 2)
        if auth and auth != declared.auth:
            fail(f"{name} is declared in {spec_path} with auth {declared.auth}; change it there", 2)
        role = declared.role
        auth = declared.auth
    else:
        role = role or users.default_role(name)
        if role is None:
            fail(
                f"give --role for {name!r} (one of {', '.join(ADDABLE_ROLES)}); to replace a user's "
                f"credentials keeping role and auth kind: seedctl users rotate OLD --new-user {name}",
                2,
            )
        if role == "enrolled" and not NODE_ID_RE.match(name):
            fail(f"an enrolled user is named by its nodeId; {name!r} is not one (like node-a3f7c9d2e1)", 2)
        registered = users.registered_auth(spec.secrets_dir)
        if name not in registered:
            # Secrets left by a user removed from the spec must not come back with a new user.
            users.remove(spec.secrets_dir, name)
        auth = auth or registered.get(name, "password")
    if auth == "nkey" and password_stdin:
        fail("an nkey user has no password: drop --password-stdin (its seed is generated)", 2)
    if password_stdin:
        secrets.set_password(spec.secrets_dir, name, sys.stdin.readline())
    value, existed = users.mint(spec.secrets_dir, name, auth)
    if declared is None:
        users.register_user(spec.secrets_dir, name, role, auth)
    where = users.secret_path(spec.secrets_dir, name, auth)
    if auth == "nkey":
        state = "nkey kept" if existed else "nkey generated"
        click.echo(f"{name}: {role}, {state} in {where} (public key {users.nkey_public_key(value)})")
    else:
        state = "password set" if password_stdin else ("password kept" if existed else "password generated")
        click.echo(f"{name}: {role}, {state} in {where}")
    if show_password:
        click.echo(value)
    click.echo("apply to running servers with: seedctl reload")


@command.command("remove")
@spec_option
@click.argument("name")
@handle_errors
def remove_user(spec_path: Path, name: str) -> None:
    """Delete NAME (added with `users add`) and its secrets; `seedctl reload` then cuts it off."""
    spec = open_spec(spec_path)
    if spec.user(name) is not None:
        fail(
            f"{name} is declared in {spec_path}: delete its entry from the spec's users list, then run "
            f"`seedctl users remove {name}` again to delete its secrets, and `seedctl reload`",
            2,
        )
    if not users.remove(spec.secrets_dir, name):
        fail(f"no user {name!r} in {spec.secrets_dir}")
    click.echo(f"{name}: removed with its secrets; apply with: seedctl reload")


@command.command("rotate")
@spec_option
@click.argument("name")
@click.option(
    "--new-user",
    default=None,
    help="Create this user with NAME's role and auth kind instead of replacing NAME's secret: "
    "nodes move to it while NAME still works (shared users like monitor: nobody is cut off).",
)
@handle_errors
def rotate_user(spec_path: Path, name: str, new_user: str | None) -> None:
    """New credentials for NAME, of the same auth kind (an nkey user stays an nkey user).

    Without --new-user NAME gets a new password or nkey seed at once: after `seedctl reload`
    only the new one works (right for one enrolled node). With --new-user the old user keeps
    working until you remove it, so a shared user is rotated without cutting anyone off.

    \b
    Examples:
      seedctl users rotate node-a3f7c9d2e1 && seedctl reload      # then hand out its credentials
      seedctl users rotate monitor --new-user monitor-2 && seedctl reload
      seedctl users credentials monitor-2 --out ./monitor-2         # hand out; when every node uses it:
      seedctl users remove monitor && seedctl reload                # (a spec user: delete it there first)
    """
    spec = open_spec(spec_path)
    _static_only(spec)
    user = users.find(spec, name)
    if user is None:
        fail(f"no user {name!r} (seedctl users list shows them)", 2)
    if user.role not in ADDABLE_ROLES:
        fail(f"{name} has role {user.role}: rotate it by changing its password in {spec_path}", 2)
    if user.auth == "password" and (user.password is not None or user.password_file is not None):
        fail(f"{name}'s password is set in {spec_path}: change it there", 2)
    if new_user is None:
        users.rotate(spec.secrets_dir, name, user.auth)
        click.echo(f"{name}: new {'nkey' if user.auth == 'nkey' else 'password'}; the old one stops working "
                   f"at the next reload")  # fmt: skip
        click.echo(
            f"next: seedctl reload && seedctl users credentials {name} --out DIR (hand it to the node)"
        )
        return
    if users.find(spec, new_user) is not None:
        fail(f"{new_user!r} already exists: pick a new name", 2)
    if user.role == "enrolled":
        fail("an enrolled user is named by its nodeId and cannot be renamed: rotate it in place", 2)
    users.remove(spec.secrets_dir, new_user)  # never inherit a stray secret of that name
    users.register_user(spec.secrets_dir, new_user, user.role, user.auth)
    users.rotate(spec.secrets_dir, new_user, user.auth)
    click.echo(f"{new_user}: {user.role}, {user.auth} (like {name}); {name} keeps working until removed")
    where = f"delete {name} from {spec_path}, then " if spec.user(name) is not None else ""
    click.echo(
        f"next: seedctl reload; seedctl users credentials {new_user} --out DIR and hand it to every node; "
        f"when all use it: {where}seedctl users remove {name} && seedctl reload"
    )


@command.command("credentials")
@spec_option
@click.argument("name", default="monitor")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the credentials file (NAME.credentials with user:password, or NAME.nk with the "
    "nkey seed; 0600) and NAME.env.",
)
@click.option("--seed-url", default=None, help="URL(s) monitors dial. Default: from the spec's servers.")
@handle_errors
def credentials(spec_path: Path, name: str, out: Path, seed_url: str | None) -> None:
    """Write a ready credentials file and env file for a monitor agent.

    NAME.credentials holds `user:password` (FEDERATION_CREDENTIALS, PROTOCOL.md §1); for an
    nkey user NAME.nk holds its seed instead (the agent signs the server's challenge with it);
    NAME.env holds FEDERATION_SEED_URL, FEDERATION_CREDENTIALS (relative to NAME.env, so the
    folder can be handed over as is), for TLS seeds FEDERATION_TLS_ENABLED, for an enrolled user
    with a custom name FEDERATION_NODE_ID (a derived name, node-<10 hex>, is the id the node's own
    key derives: nothing to set), for an observer sharing off. No password in the URL. The node
    operator runs: ENABLE_FEDERATION=true monitor-agent run --env-file NAME.env

    \b
    Examples:
      seedctl users credentials monitor --out ./monitor
      seedctl users credentials node-a3f7c9d2e1 --out /tmp/n1 --seed-url nats://seed.example.org:4222
    """
    spec = open_spec(spec_path)
    _static_only(spec)
    user = users.find(spec, name)
    if user is None:
        fail(f"no user {name!r}: add it with `seedctl users add {name} --role monitor`", 2)
    cred, kind = users.write_credentials(spec, user, out)
    lines = [f"# {name}: credentials for a monitor agent, from `seedctl users credentials`."]
    lines.append("# Load with: monitor-agent run --env-file THIS_FILE (paths are relative to this file).")
    if user.role == "observer":
        lines.append("# An observer only receives: it cannot publish, so this file turns sharing off.")
    else:
        lines.append("# Federation is opt-in: the node operator adds ENABLE_FEDERATION=true to share.")
    lines += users.env_lines(spec, cred.name, seed_url) + users.role_env_lines(user)
    env = out / f"{name}.env"
    write_private(env, "\n".join(lines) + "\n")
    click.echo(f"wrote {cred} ({kind}, 0600) and {env}")
