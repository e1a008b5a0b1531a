"""Spec -> one nats-server config per server, through the one Jinja2 template in seed/templates/.

`context(spec, server)` builds the plain dict the template needs (the Ansible role can feed the
same dict to the same template); `render_server` fills it in; `render_all` writes the files
(atomic, mode 0600: they hold password hashes; nkey users appear by public key only). Output is deterministic: same spec and
secrets, same bytes, same config digest.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import jinja2

from monitor_agent.protocol import subject_root

from . import enroll, secrets
from .spec import ServerSpec, Spec, SpecError
from .users import all_hashes, config_users, permissions, user_hash

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE = "nats-server.conf.j2"
CONF_NAME = "nats-server.conf"
JETSTREAM_DIR = "jetstream"
HISTORY_ACCOUNT = "FED"  # the account of the federation users and the history stream (the template's)
JETSTREAM_MAX_MEMORY = 64 * 1024 * 1024  # ordered consumers' state only: the stream is on disk
ADMIN_RESERVE = 100  # connections of each server the federation account leaves free (at most a tenth)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders a nats-server config, not HTML
    )
    env.filters["q"] = quote
    return env


def quote(value: object) -> str:
    """A double-quoted nats-server config string (JSON escaping is a subset nats accepts)."""
    return json.dumps(str(value))


def route_password(spec: Spec, create: bool = True) -> str | None:
    """The route password every seed of the cluster dials and accepts (None: `cluster.auth: none`)."""
    auth = spec.route_auth
    if auth is None:
        return None
    if auth.password_file is not None:
        text = auth.password_file.read_text(encoding="utf-8").strip()
        if len(text) < secrets.MIN_PASSWORD_LEN:
            raise SpecError(
                spec.path, None, "cluster.auth.password_file",
                f"{auth.password_file} holds fewer than {secrets.MIN_PASSWORD_LEN} characters",
            )  # fmt: skip
        return text
    return secrets.route_password(spec.secrets_dir, create=create)


def route_url(spec: Spec, peer: ServerSpec, password: str | None) -> str:
    """A `routes` entry: nats-server dials a route with the user:password of its URL (route.go
    sendRouteConnect), so every seed's config carries the plaintext route password."""
    url = peer.route_url or ""
    if spec.route_auth is None or password is None:
        return url
    user = urllib.parse.quote(spec.route_auth.user, safe="")
    return url.replace("://", f"://{user}:{urllib.parse.quote(password, safe='')}@", 1)


def cluster_context(
    spec: Spec,
    server: ServerSpec,
    password: str | None = None,
    dial: dict[str, list[str]] | None = None,
) -> dict | None:
    """The template's `cluster` block of one server: listen, routes, authorization, TLS.

    `password` is the route password this server accepts (default: the cluster's); `dial` maps a
    peer's name to the passwords this server dials it with, one `routes` entry each (default:
    `password`). A route rotation uses both to move the cluster to a new password one server
    at a time (seed.deploy.route_rotation_vars)."""
    if server.cluster_port is None:
        return None
    if password is None and spec.route_auth is not None:
        password = route_password(spec)
    tls = None
    if spec.route_tls:
        tls = {
            "cert": str(spec.route_tls.cert),
            "key": str(spec.route_tls.key),
            "ca": str(spec.route_tls.ca),
            "timeout_s": spec.route_tls.timeout_s,
        }
    routes = []
    for peer in spec.servers:
        if peer.name == server.name or peer.cluster_port is None:
            continue
        dials: Sequence[str | None] = (dial or {}).get(peer.name) or [password]
        for pw in dials:
            routes.append(route_url(spec, peer, pw))
    return {
        "name": spec.cluster_name,
        "listen": _host_port(server.host, server.cluster_port),
        "routes": routes,
        "auth": {"user": spec.route_auth.user, "password": password} if spec.route_auth else None,
        "tls": tls,
    }


def federation_max_connections(spec: Spec) -> int:
    """The federation account's connection limit: the spec's, or each server's max_connections
    less a reserve (a tenth, at most ADMIN_RESERVE) for the admin and the system account, summed
    over the cluster (with the system account nats-server counts an account cluster-wide)."""
    if spec.limits.federation_max_connections is not None:
        return spec.limits.federation_max_connections
    per_server = spec.limits.max_connections
    reserve = max(1, min(ADMIN_RESERVE, per_server // 10)) if per_server > 1 else 0
    servers = len(spec.servers) if spec.system_account else 1
    return max(1, per_server - reserve) * servers


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def context(
    spec: Spec,
    server: ServerSpec,
    hashes: dict[str, str] | None = None,
    route_pw: str | None = None,
    store_dir: str | None = None,
) -> dict:
    """Everything the template reads, as plain data (`route_pw`: another route password;
    `store_dir`: another JetStream store directory, see `jetstream_context`)."""
    users = config_users(spec)
    if hashes is None:
        hashes = {u.name: user_hash(spec, u) for u in users}
    entries = [
        {
            "name": u.name,
            "role": u.role,
            "auth": u.auth,
            # The same permissions whichever way a user authenticates.
            "hash": hashes[u.name] if u.auth == "password" else None,
            "nkey": hashes[u.name] if u.auth == "nkey" else None,
            "permissions": permissions(u, spec.subject_prefix, spec.history is not None),
        }
        for u in users
    ]
    cluster = cluster_context(spec, server, route_pw)
    tls = None
    if spec.tls:
        tls = {
            "cert": str(spec.tls.cert),
            "key": str(spec.tls.key),
            "client_ca": str(spec.tls.client_ca) if spec.tls.client_ca else None,
            "timeout_s": spec.tls.timeout_s,
        }
    return {
        "federation": spec.name,
        "spec_file": spec.path.name,
        "server": {"name": server.name},
        "listen": _host_port(server.host, server.client_port),
        "monitor_listen": _host_port(server.monitor_host, server.monitor_port),
        "limits": {
            "max_connections": spec.limits.max_connections,
            "max_payload": spec.limits.max_payload,
            "max_pending": spec.limits.max_pending,
            "ping_interval_s": spec.limits.ping_interval_s,
            "max_pings_out": spec.limits.max_pings_out,
            "write_deadline_s": spec.limits.write_deadline_s,
            "lame_duck_duration_s": spec.limits.lame_duck_duration_s,
            "lame_duck_grace_period_s": spec.limits.lame_duck_grace_period_s,
            "federation_max_connections": federation_max_connections(spec),
        },
        "tls": tls,
        "jetstream": jetstream_context(spec, server, store_dir),
        "cluster": cluster,
        "system_account": spec.system_account,
        "operator": enroll.render_context(spec, server),
        "subject_root": subject_root(spec.subject_prefix),
        "sys_users": [e for e in entries if e["role"] == "admin" and spec.system_account],
        "fed_users": [e for e in entries if e["role"] != "admin" or not spec.system_account],
    }


def jetstream_context(spec: Spec, server: ServerSpec, store_dir: str | None = None) -> dict | None:
    """The template's `jetstream` block (spec `history:` only): store under the state dir, limits.

    `store_dir`: the directory a host really uses instead (the Ansible role renders its own,
    `nats_seed_jetstream_dir`); the drift check passes the one the running server reports."""
    h = spec.history
    if h is None:
        return None
    return {
        "store_dir": store_dir or str(spec.state_dir / server.name / JETSTREAM_DIR),
        # The stream's own max_bytes discards old events first; the server limit leaves headroom.
        "max_file_store": h.max_bytes + h.max_bytes // 4,
        "max_memory_store": JETSTREAM_MAX_MEMORY,
    }


def render_server(
    spec: Spec, server: ServerSpec, hashes: dict[str, str] | None = None, store_dir: str | None = None
) -> str:
    """The nats-server config text of one server (`store_dir`: see `jetstream_context`)."""
    return _env().get_template(TEMPLATE).render(**context(spec, server, hashes, store_dir=store_dir))


def render_all(spec: Spec, out_dir: Path | None = None, names: list[str] | None = None) -> dict[str, Path]:
    """Write `<out_dir>/<server>/nats-server.conf` for each server; returns {name: path}."""
    out_dir = Path(out_dir) if out_dir is not None else spec.rendered_dir
    hashes = all_hashes(spec)
    written: dict[str, Path] = {}
    for server in spec.servers:
        if names and server.name not in names:
            continue
        path = out_dir / server.name / CONF_NAME
        secrets.write_private(path, render_server(spec, server, hashes))
        written[server.name] = path
    return written
