"""Enrollment: a node's own Ed25519 key becomes its NATS identity (no secret ever travels).

Both modes start from a request `monitor-agent enroll-request` wrote (monitor_agent.enrollment):

* static mode (`auth.mode: static`, the default): `approve` records the node's public key; the
  rendered config then holds an `enrolled` NKEY user for it (publish only `tbfed.v1.*.<nodeId>`).
  The seeds learn it at the next `seedctl reload` / `seedctl deploy`.
* operator mode (`auth.mode: operator`): NATS decentralized JWT auth. seedctl keeps an operator,
  a system account and the federation account (identity and signing keys separate); the seeds
  trust the operator and run a `full` account resolver preloaded with the account JWTs.
  `approve` signs a user JWT for the node's key with the federation account's signing key: no
  config change, no reload. `revoke` adds the key to the account JWT's revocations and pushes the
  new account JWT to the running seeds through the system account (`$SYS.REQ.CLAIMS.UPDATE`):
  the server drops the node's connection and refuses it from then on.

Secrets dir layout (directory 0700, files 0600):
  enrolled.json                 {nodeId: {key, region, mode, approvedAt, issuedAt, expires, revokedAt}}
  operator/operator.nk          operator identity seed (SO...)    operator/operator-signing.nk
  operator/sys.nk, sys-signing.nk, fed.nk, fed-signing.nk        account identity / signing seeds
  operator/operator.jwt, sys.jwt, fed.jwt                        current JWTs (public, not secrets)
  operator/seedctl.creds        the system-account user seedctl pushes account updates with
(User JWTs are not kept: they are public, the node holds its own, and the registry has their dates.)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor_agent import natsjwt
from monitor_agent.enrollment import RequestError, verify_request
from monitor_agent.timestamps import rfc3339

from . import secrets, users
from .spec import ServerSpec, Spec

REGISTRY = "enrolled.json"
OPERATOR_DIR = "operator"
# A federation message is at most 1 KB (PROTOCOL.md §2) plus the two signature headers: 2 KB caps
# what one enrolled node can push through the seed per message, whatever the server-wide limit.
USER_MAX_PAYLOAD = 2048
PUSH_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE"
SEEDCTL_USER = "seedctl"
RENEW_WARN_DAYS = 14
_NO_LIMIT = -1


class EnrollError(Exception):
    """A refused enrollment operation; the message is one line naming the problem."""


# ---- registry ----


def _registry_path(spec: Spec) -> Path:
    return Path(spec.secrets_dir) / REGISTRY


def load_registry(spec: Spec) -> dict[str, dict]:
    path = _registry_path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EnrollError(f"{path} is unreadable ({exc}): restore it from backup") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "key" in v for v in data.values()):
        raise EnrollError(f"{path} must hold a JSON object of nodeId -> {{key, ...}}")
    return data


def _save_registry(spec: Spec, reg: dict[str, dict]) -> None:
    secrets.ensure_dir(Path(spec.secrets_dir))
    # One line per node (compact: the C encoder; 1 000 nodes are ~250 KB rewritten per change).
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in sorted(reg.items()))
    secrets.write_private(_registry_path(spec), "{\n" + body + "\n}\n")


@contextlib.contextmanager
def _locked(spec: Spec) -> Iterator[None]:
    """One enrollment change at a time (two operators approving at once must not lose one)."""
    d = secrets.ensure_dir(Path(spec.secrets_dir))
    fd = os.open(d, os.O_RDONLY)  # the directory itself is the lock: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def static_users(spec: Spec) -> dict[str, str]:
    """{nodeId: public user key} of nodes enrolled by request in static mode (and not revoked)."""
    if spec.auth.operator:
        return {}
    return {
        node: entry["key"]
        for node, entry in load_registry(spec).items()
        if entry.get("mode", "static") == "static" and not entry.get("revokedAt")
    }


# ---- operator material ----


@dataclass(frozen=True)
class Operator:
    """The operator-mode keys and JWTs of one spec (seeds stay in secrets_dir)."""

    dir: Path
    operator_jwt: str
    sys_public: str
    fed_public: str
    sys_jwt: str
    fed_jwt: str

    def seed(self, name: str) -> str:
        return (self.dir / f"{name}.nk").read_text(encoding="utf-8").strip()

    def keypair(self, name: str):
        return natsjwt.keypair(self.seed(name))

    @property
    def creds_path(self) -> Path:
        return self.dir / f"{SEEDCTL_USER}.creds"

    @property
    def preload(self) -> dict[str, str]:
        return {self.sys_public: self.sys_jwt, self.fed_public: self.fed_jwt}


def _seed_file(d: Path, name: str, kind: str, create: bool) -> str:
    path = d / f"{name}.nk"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise EnrollError(f"{path} is missing: operator mode keys were never made or were lost") from None
    value = natsjwt.new_seed(kind)
    secrets.write_private(path, value + "\n")
    return value


def _account_claims(public: str, name: str, signing: str, revocations: dict[str, int] | None) -> dict:
    nats: dict = {
        "type": "account",
        "version": 2,
        "limits": {
            "subs": _NO_LIMIT,
            "data": _NO_LIMIT,
            "payload": _NO_LIMIT,
            "imports": _NO_LIMIT,
            "exports": _NO_LIMIT,
            "wildcards": True,
            "conn": _NO_LIMIT,
            "leaf": _NO_LIMIT,
        },
        "signing_keys": [signing],
        # A user JWT without permissions may do nothing (ours always carry their own).
        "default_permissions": {"pub": {"deny": [">"]}, "sub": {"deny": [">"]}},
    }
    if revocations:
        nats["revocations"] = dict(sorted(revocations.items()))
    return {"sub": public, "name": name, "nats": nats}


def operator(spec: Spec, create: bool = True) -> Operator:
    """The operator material of `spec`, created (keys 0600, JWTs) on first use when `create`."""
    if not spec.auth.operator:
        raise EnrollError(f"{spec.path}: auth.mode is static; operator keys exist only in operator mode")
    d = Path(spec.secrets_dir) / OPERATOR_DIR
    if create:
        secrets.ensure_dir(d)
    elif not d.is_dir():
        raise EnrollError(f"{d} does not exist: render or start the seeds once in operator mode first")
    keys = {}
    for name, kind in (
        ("operator", "operator"),
        ("operator-signing", "operator"),
        ("sys", "account"),
        ("sys-signing", "account"),
        ("fed", "account"),
        ("fed-signing", "account"),
        (SEEDCTL_USER, "user"),
    ):
        keys[name] = _seed_file(d, name, kind, create)
    pub = {name: natsjwt.public_of(seed) for name, seed in keys.items()}

    def stored(name: str, make) -> str:
        path = d / f"{name}.jwt"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if not create:
                raise EnrollError(f"{path} is missing") from None
        token = make()
        secrets.write_private(path, token + "\n")
        return token

    op_signer = natsjwt.keypair(keys["operator-signing"])
    operator_jwt = stored(
        "operator",
        lambda: natsjwt.encode(
            {
                "sub": pub["operator"],
                "name": spec.name,
                "nats": {
                    "type": "operator",
                    "version": 2,
                    "signing_keys": [pub["operator-signing"]],
                    "system_account": pub["sys"],
                    "strict_signing_key_usage": True,
                },
            },
            natsjwt.keypair(keys["operator"]),
        ),
    )
    sys_jwt = stored(
        "sys", lambda: natsjwt.encode(_account_claims(pub["sys"], "SYS", pub["sys-signing"], None), op_signer)
    )
    fed_jwt = stored(
        "fed", lambda: natsjwt.encode(_account_claims(pub["fed"], "FED", pub["fed-signing"], None), op_signer)
    )
    creds = d / f"{SEEDCTL_USER}.creds"
    if not creds.exists() and create:
        token = natsjwt.encode(
            {
                "sub": pub[SEEDCTL_USER],
                "name": SEEDCTL_USER,
                "nats": {
                    "type": "user",
                    "version": 2,
                    "issuer_account": pub["sys"],
                    "pub": {"allow": ["$SYS.REQ.>"]},
                    "sub": {"allow": ["_INBOX.>"]},
                    "subs": _NO_LIMIT,
                    "data": _NO_LIMIT,
                    "payload": _NO_LIMIT,
                },
            },
            natsjwt.keypair(keys["sys-signing"]),
        )
        secrets.write_private(creds, _creds_text(token, keys[SEEDCTL_USER]))
    return Operator(d, operator_jwt, pub["sys"], pub["fed"], sys_jwt, fed_jwt)


def _creds_text(token: str, seed: str) -> str:
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{token}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
    )


def render_context(spec: Spec, server: ServerSpec) -> dict | None:
    """The template's `operator` block of one server (None in static mode)."""
    if not spec.auth.operator:
        return None
    op = operator(spec, create=True)
    base = spec.auth.resolver_dir or (Path(spec.state_dir) / server.name)
    resolver_dir = base / "jwt" if spec.auth.resolver_dir is None else base / server.name
    return {
        "jwt": op.operator_jwt,
        "system_account": op.sys_public,
        "resolver": spec.auth.resolver,
        "resolver_dir": str(resolver_dir),
        "preload": [{"account": k, "jwt": v} for k, v in op.preload.items()],
    }


# ---- requests and user JWTs ----


def read_request(path: Path) -> dict:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise EnrollError(f"{path}: cannot read the request ({exc.strerror or exc})") from None
    try:
        return verify_request(raw)
    except RequestError as exc:
        raise EnrollError(f"{path}: refused: {exc}") from None


def user_claims(spec: Spec, node_id: str, key: str, fed_public: str, expires: int) -> dict:
    return {
        "sub": key,
        "name": node_id,
        "exp": expires,
        "nats": {
            "type": "user",
            "version": 2,
            "issuer_account": fed_public,
            **users.jwt_permissions(node_id, spec.subject_prefix),
            "subs": _NO_LIMIT,
            "data": _NO_LIMIT,
            "payload": USER_MAX_PAYLOAD,
        },
    }


def issue_user_jwt(
    spec: Spec, node_id: str, key: str, days: int, now: int | None = None, op: Operator | None = None
) -> str:
    op = op or operator(spec, create=False)
    now = int(time.time()) if now is None else now
    claims = user_claims(spec, node_id, key, op.fed_public, now + days * 86400)
    return natsjwt.encode(claims, op.keypair("fed-signing"), now=now)


def jwt_file_text(spec: Spec, node_id: str, token: str) -> str:
    exp = natsjwt.decode(token).expires
    until = rfc3339(exp) if exp else "never"
    return (
        f"# NATS user JWT of {node_id} in federation {spec.name}, valid until {until}.\n"
        "# Holds no secret: the agent proves its key with DATA_DIR/node.key. Use it as FEDERATION_CREDENTIALS.\n"
        f"{token}\n"
    )


def key_file_text(spec: Spec, node_id: str, key: str) -> str:
    return (
        f"# Public NKEY of {node_id}, an enrolled user of federation {spec.name} (static mode).\n"
        "# Holds no secret: the agent signs with DATA_DIR/node.key. Use it as FEDERATION_CREDENTIALS.\n"
        f"{key}\n"
    )


def write_node_files(
    spec: Spec, node_id: str, out: Path, credential_text: str, suffix: str
) -> tuple[Path, Path]:
    """The node's credentials file (public material only) and its env file."""
    out = Path(out)
    cred = out / f"{node_id}{suffix}"
    secrets.write_private(cred, credential_text)
    lines = ["# Federation is opt-in: the node operator sets ENABLE_FEDERATION=true to share."]
    lines += users.env_lines(spec, cred.name)
    env = out / f"{node_id}.env"
    secrets.write_private(env, "\n".join(lines) + "\n")
    return cred, env


@dataclass
class Approval:
    node_id: str
    key: str
    mode: str
    credentials: Path
    env: Path
    expires: int | None
    renewed: bool


def approve(spec: Spec, request_path: Path, out: Path, days: int | None = None) -> Approval:
    """Check the request and admit its node (see the module doc); nothing is written on refusal."""
    request = read_request(request_path)
    node_id, key = request["nodeId"], request["userKey"]
    with _locked(spec):
        reg = load_registry(spec)
        known = reg.get(node_id)
        if known is not None and known.get("revokedAt"):
            raise EnrollError(
                f"{node_id} was revoked at {when(known['revokedAt'])}: a revoked key stays revoked; "
                "the node makes a new key (new DATA_DIR) and a new request"
            )
        if known is not None and known["key"] != key:
            raise EnrollError(f"{node_id} is enrolled with another key ({known['key']})")
        if node_id in users.registered_users(spec.secrets_dir) or spec.user(node_id) is not None:
            raise EnrollError(f"{node_id} is already a user (seedctl users list): remove it there first")
        now = int(time.time())
        entry = {
            "key": key,
            "region": request["region"],
            "mode": spec.auth.mode,
            "approvedAt": (known or {}).get("approvedAt", now),
            "revokedAt": None,
        }
        if spec.auth.operator:
            days = days or spec.auth.user_jwt_days
            token = issue_user_jwt(spec, node_id, key, days, now)
            entry.update(issuedAt=now, expires=now + days * 86400)
            cred, env = write_node_files(spec, node_id, out, jwt_file_text(spec, node_id, token), ".jwt")
        else:
            entry.update(issuedAt=now, expires=None)
            cred, env = write_node_files(spec, node_id, out, key_file_text(spec, node_id, key), ".pub")
        reg[node_id] = entry
        _save_registry(spec, reg)
    return Approval(node_id, key, spec.auth.mode, cred, env, entry["expires"], known is not None)


def renew(spec: Spec, node_id: str, out: Path, days: int | None = None) -> Approval:
    """A fresh user JWT (new expiry) for an enrolled node; the old one stays valid until it expires."""
    if not spec.auth.operator:
        raise EnrollError("renew is for operator mode (static NKEY users do not expire)")
    with _locked(spec):
        reg = load_registry(spec)
        entry = _known(reg, node_id)
        if entry.get("revokedAt"):
            raise EnrollError(f"{node_id} was revoked at {when(entry['revokedAt'])}: it cannot be renewed")
        days = days or spec.auth.user_jwt_days
        now = int(time.time())
        token = issue_user_jwt(spec, node_id, entry["key"], days, now)
        entry.update(issuedAt=now, expires=now + days * 86400)
        cred, env = write_node_files(spec, node_id, out, jwt_file_text(spec, node_id, token), ".jwt")
        _save_registry(spec, reg)
    return Approval(node_id, entry["key"], "operator", cred, env, entry["expires"], True)


def _known(reg: dict, node_id: str) -> dict:
    entry = reg.get(node_id)
    if entry is None:
        raise EnrollError(f"unknown nodeId {node_id!r}: not enrolled here (seedctl enroll list)")
    return entry


def when(ts: int | None) -> str:
    return rfc3339(ts) if ts else "never"


def status_of(entry: dict, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if entry.get("revokedAt"):
        return "revoked"
    exp = entry.get("expires")
    if exp is None:
        return "active"
    if exp <= now:
        return "expired"
    if exp - now < RENEW_WARN_DAYS * 86400:
        return "expiring"
    return "active"


def list_enrolled(spec: Spec) -> list[dict]:
    now = time.time()
    return [
        {
            "nodeId": node,
            "key": e["key"],
            "mode": e.get("mode", "static"),
            "region": e.get("region", "UNKNOWN"),
            "approved": when(e.get("approvedAt")),
            "expires": when(e.get("expires")),
            "status": status_of(e, now),
        }
        for node, e in sorted(load_registry(spec).items())
    ]


# ---- revocation and pushing account JWTs ----


def revoked_keys(spec: Spec) -> dict[str, int]:
    return {
        e["key"]: int(e["revokedAt"])
        for e in load_registry(spec).values()
        if e.get("revokedAt") and e.get("mode") == "operator"
    }


def fed_account_jwt(spec: Spec, revocations: dict[str, int]) -> str:
    op = operator(spec, create=False)
    signing = natsjwt.public_of(op.seed("fed-signing"))
    return natsjwt.encode(
        _account_claims(op.fed_public, "FED", signing, revocations), op.keypair("operator-signing")
    )


def check_resolvers(spec: Spec, timeout: float = 2.0) -> tuple[list[str], list[str]]:
    """(reachable seeds in operator mode, unreachable seeds); EnrollError for a seed without a resolver."""
    from .monitoring import EndpointError, Monitor

    try:
        sys_public = operator(spec, create=False).sys_public
    except (EnrollError, OSError):
        sys_public = None  # no operator yet: no running seed can be trusting it
    ok, down = [], []
    for server in spec.servers:
        try:
            varz = Monitor(server.monitor_url, timeout).varz()
        except EndpointError:
            down.append(server.name)
            continue
        if not varz.get("trusted_operators_claim") or varz.get("system_account") != sys_public:
            raise EnrollError(
                f"seed {server.name} ({server.monitor_url}) runs without this operator's account resolver "
                "(static config or another operator): restart it in operator mode (seedctl down && seedctl up)"
            )
        ok.append(server.name)
    return ok, down


def revoke(spec: Spec, node_id: str, timeout: float = 5.0) -> tuple[dict, dict[str, str]]:
    """Revoke `node_id` (see module doc); returns (entry, {server: push result}) for operator mode."""
    with _locked(spec):
        reg = load_registry(spec)
        entry = _known(reg, node_id)
        if entry.get("revokedAt"):
            raise EnrollError(f"{node_id} is already revoked (at {when(entry['revokedAt'])})")
        if entry.get("mode") != "operator" or not spec.auth.operator:
            if spec.auth.operator:
                raise EnrollError(
                    f"{node_id} was enrolled in static mode: nothing to revoke in operator mode"
                )
            entry["revokedAt"] = int(time.time())
            _save_registry(spec, reg)
            return entry, {}
        check_resolvers(spec)  # refuse before writing anything
        now = int(time.time())
        revocations = revoked_keys(spec) | {entry["key"]: now}
        token = fed_account_jwt(spec, revocations)
        op = operator(spec, create=False)
        secrets.write_private(op.dir / "fed.jwt", token + "\n")
        entry["revokedAt"] = now
        _save_registry(spec, reg)
    return entry, push(spec, [token], timeout=timeout)


def push(spec: Spec, tokens: list[str] | None = None, timeout: float = 5.0) -> dict[str, str]:
    """Send account JWTs to every seed through the system account; {server: "updated" | reason}."""
    op = operator(spec, create=False)
    tokens = tokens if tokens is not None else [op.sys_jwt, op.fed_jwt]
    return asyncio.run(_push(spec, op, tokens, timeout))


async def _push(spec: Spec, op: Operator, tokens: list[str], timeout: float) -> dict[str, str]:
    import nats

    results: dict[str, str] = {}
    for server in spec.servers:
        url = server.client_url.replace("nats://", "tls://", 1) if spec.tls else server.client_url
        try:
            nc = await nats.connect(
                url,
                user_credentials=str(op.creds_path),
                connect_timeout=timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                name="seedctl",
            )
        except Exception as exc:  # noqa: BLE001 - reported per server
            results[server.name] = f"not reached ({type(exc).__name__}: {str(exc)[:120]})"
            continue
        try:
            answers = []
            for token in tokens:
                msg = await nc.request(PUSH_SUBJECT, token.encode(), timeout=timeout)
                body = json.loads(msg.data)
                if "error" in body:
                    answers.append(f"refused: {body['error'].get('description', body['error'])}")
                else:
                    answers.append(body.get("data", {}).get("message", "updated"))
            bad = [a for a in answers if a != "jwt updated"]
            results[server.name] = bad[0] if bad else "updated"
        except Exception as exc:  # noqa: BLE001
            results[server.name] = f"no answer ({type(exc).__name__})"
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
    return results
