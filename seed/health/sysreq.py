"""Health data over NATS: the monitoring endpoints through the system account, not port 8222.

nats-server answers `$SYS.REQ.SERVER.PING.<ENDPOINT>` (every server of the cluster replies) and
`$SYS.REQ.SERVER.<id>.<ENDPOINT>` (one server) with `{"server": {...}, "data": <the same JSON
as /<endpoint>>, "error": {...}}` (server/events.go). Only a user of the system account may send
them: seedctl connects as the spec's admin user over the client port, with the client TLS.
So 8222 stays on 127.0.0.1 on every seed and the console runs on any host that reaches a
client port. One PING per endpoint samples the whole cluster; a server that does not reply
within the timeout gets a transport error naming it (reachable and topology fail by name).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass
from functools import cache

from ..monitoring import EndpointError, Healthz
from .sample import FEDERATION_PROBE_SUBJECT, Sample

PING = "$SYS.REQ.SERVER.PING.{endpoint}"
DIRECT = "$SYS.REQ.SERVER.{id}.{endpoint}"
VIAS = ("http", "nats", "auto")
CONNECT_TIMEOUT_S = 5.0


def nats_failures() -> tuple[type[BaseException], ...]:
    from nats.errors import Error as NatsError

    return (NatsError, OSError, ConnectionError)


class SysError(Exception):
    """The system account cannot be used (no admin user, refused login, no seed reachable)."""


def admin_user(spec):
    """The spec's admin user (system account), or SysError saying what to add."""
    from seed.users import effective_users

    if not spec.system_account:
        raise SysError(f"{spec.path}: system_account is false: health and reload over NATS need it")
    admin = next((u for u in effective_users(spec) if u.role == "admin"), None)
    if admin is None:
        raise SysError(f"{spec.path}: no admin user (system account): add {{name: admin, role: admin}}")
    return admin


def connect_options(spec, timeout: float) -> dict:
    """nats-py options of the admin connection: credentials, TLS, no reconnect."""
    from seed.secrets import SecretError
    from seed.users import nats_login

    admin = admin_user(spec)
    opts: dict = {
        "servers": spec.client_urls,
        "name": "seedctl-sys",
        # Logging in costs the seed one bcrypt check (a password admin): ~0.1 s idle, seconds on a
        # loaded host, so the login gets more time than one request.
        "connect_timeout": max(timeout, CONNECT_TIMEOUT_S),
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
        "dont_randomize": True,
        "verbose": False,
    }
    try:
        opts.update(nats_login(spec, admin))
    except SecretError as exc:
        raise SysError(str(exc)) from None
    if spec.tls is not None:
        opts["tls"] = _tls_context(str(spec.tls.cert))
    return opts


@cache
def _tls_context(seed_cert: str) -> ssl.SSLContext:
    """Trust the system CAs and the seed's own certificate file (chain or self-signed leaf)."""
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=seed_cert)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf in the file is a trust anchor too
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def connect(spec, timeout: float = 2.0):
    """The admin's connection to the first seed that answers; SysError naming why not."""
    import nats
    from nats.errors import Error as NatsError

    async def quiet(_exc):  # errors surface as exceptions of connect/request
        return None

    try:
        return await nats.connect(error_cb=quiet, **connect_options(spec, timeout))
    except (TimeoutError, NatsError, OSError, ssl.SSLError) as exc:
        text = str(exc) or type(exc).__name__
        raise SysError(f"cannot connect to any seed as {admin_user(spec).name}: {text}") from None


@dataclass(slots=True)
class Replies:
    """Replies to one PING by server name, and when each arrived (seconds after the request)."""

    by_name: dict[str, dict]
    at: dict[str, float]


async def ping(nc, endpoint: str, options: dict | None, expect: set[str], timeout: float) -> Replies:
    """Publish one PING request and gather replies until every expected server answered."""
    inbox = nc.new_inbox()
    got: dict[str, dict] = {}
    at: dict[str, float] = {}
    done = asyncio.Event()
    started = time.perf_counter()

    async def on_reply(msg):
        try:
            body = json.loads(msg.data)
            name = body["server"]["name"]
        except (ValueError, KeyError, TypeError):
            return
        got[name] = body
        at[name] = time.perf_counter() - started
        if expect <= got.keys():
            done.set()

    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        payload = json.dumps(options).encode() if options else b""
        await nc.publish(PING.format(endpoint=endpoint), payload, reply=inbox)
        await nc.flush(timeout=timeout)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
    finally:
        await sub.unsubscribe()
    return Replies(got, at)


def _data(endpoint: str, name: str, replies: Replies, why_missing: str):
    body = replies.by_name.get(name)
    if body is None:
        return None, EndpointError("timeout", why_missing)
    err = body.get("error")
    if err:
        return None, EndpointError(
            "http", f"{endpoint} over $SYS: {err.get('description') or err}", err.get("code")
        )
    data = body.get("data")
    if not isinstance(data, dict):
        return None, EndpointError("bad_shape", f"{endpoint} over $SYS: no data object")
    return data, None


async def _no_replies() -> Replies:
    return Replies({}, {})


async def collect_all(
    nc,
    names: list[str],
    timeout: float,
    *,
    subject: str = FEDERATION_PROBE_SUBJECT,
    jsz_account: str | None = None,
) -> list[Sample]:
    """The same `Sample` per server as `collect` over HTTP, from four PINGs to the whole cluster
    (five with `jsz_account`: JSZ of that account's streams, as /jsz?acc=&streams=1&config=1)."""
    expect = set(names)
    at = time.time()
    started = time.perf_counter()
    jsz_opts = {"account": jsz_account, "streams": True, "config": True} if jsz_account else None
    varz, healthz, routez, subsz, jsz = await asyncio.gather(
        ping(nc, "VARZ", None, expect, timeout),
        ping(nc, "HEALTHZ", None, expect, timeout),
        ping(nc, "ROUTEZ", None, expect, timeout),
        ping(nc, "SUBSZ", {"subscriptions": True, "test": subject, "limit": 1024}, expect, timeout),
        ping(nc, "JSZ", jsz_opts, expect, timeout) if jsz_account else _no_replies(),
    )
    elapsed = time.perf_counter() - started
    via = getattr(nc, "connected_url", None)
    via_text = f"{via.hostname}:{via.port}" if via else "a seed"
    samples = []
    for name in names:
        missing = (
            f"{name} did not answer $SYS.REQ.SERVER.PING within {timeout:g}s "
            f"(asked through {via_text}: down, or cut off from that seed's cluster)"
        )
        v, v_err = _data("VARZ", name, varz, missing)
        if v is not None and "server_id" not in v:
            v, v_err = (
                None,
                EndpointError("bad_shape", "VARZ over $SYS is not a nats-server's (no server_id)"),
            )
        h, h_err = _data("HEALTHZ", name, healthz, missing)
        hz = None
        if h is not None:
            code = h.get("status_code") or (200 if h.get("status") == "ok" else 503)
            hz = Healthz(int(code), h)
        r, r_err = _data("ROUTEZ", name, routez, missing)
        s, s_err = _data("SUBSZ", name, subsz, missing)
        j, j_err = _data("JSZ", name, jsz, missing) if jsz_account else (None, None)
        answered = [x.at[name] for x in (varz, healthz, routez, subsz, jsz) if name in x.at]
        samples.append(
            Sample(
                name=name,
                url=f"nats://{via_text} $SYS",
                at=at,
                varz=v,
                varz_error=v_err,
                healthz=hz,
                healthz_error=h_err,
                routez=r,
                routez_error=r_err,
                fed_subsz=s,
                fed_error=s_err,
                jsz=j,
                jsz_error=j_err,
                elapsed_s=max(answered) if answered else elapsed,
            )
        )
    return samples


def unreachable_samples(names: list[str], message: str) -> list[Sample]:
    """Every server unreachable for one reason (no seed accepted the admin's connection)."""
    err = EndpointError("network", message)
    now = time.time()
    return [
        Sample(
            name=n,
            url="nats $SYS",
            at=now,
            varz_error=err,
            healthz_error=err,
            routez_error=err,
            fed_error=err,
            jsz_error=err,
        )
        for n in names
    ]


async def request_one(nc, server_id: str, endpoint: str, options: dict | None, timeout: float) -> dict:
    """One server's answer to `$SYS.REQ.SERVER.<id>.<ENDPOINT>`; SysError on no reply or an error."""
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    subject = DIRECT.format(id=server_id, endpoint=endpoint)
    try:
        msg = await nc.request(subject, json.dumps(options).encode() if options else b"", timeout=timeout)
    except (TimeoutError, NatsTimeout, NoRespondersError):
        raise SysError(f"no answer to {subject} within {timeout:g}s") from None
    body = json.loads(msg.data)
    if body.get("error"):
        err = body["error"]
        text = "".join(c if c.isprintable() else "?" for c in str(err.get("description") or err))
        raise SysError(f"{endpoint}: {text}")
    return body


# ---- which way to read the monitoring data ----


@cache
def _is_local_address(host: str) -> bool:
    """True when `host` is an address of this machine (it can be bound to)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _type, _proto, _name, addr in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((addr[0], 0))
            return True
        except OSError:
            continue
    return False


def http_reaches(server) -> bool:
    """Whether http://<monitor_url> from here reaches this server's own monitoring port: its
    monitoring listens on loopback (or a wildcard) and the server runs on this machine."""
    from seed.spec import is_loopback, is_wildcard, machine_of

    if not (is_loopback(server.monitor_host) or is_wildcard(server.monitor_host)):
        return False
    machine = machine_of(server)
    return machine == "local" or _is_local_address(machine)


def choose_via(spec, names: list[str] | None, via: str) -> str:
    """`auto`: http when every chosen server's monitoring is loopback on this host, else nats."""
    if via not in VIAS:
        raise ValueError(f"via {via!r} is not one of {', '.join(VIAS)}")
    if via != "auto":
        return via
    servers = [s for s in spec.servers if not names or s.name in names]
    return "http" if all(http_reaches(s) for s in servers) else "nats"
