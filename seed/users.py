"""Users, roles and credentials: the one place that knows them.

Where a federation's users come from, in the order `effective_users` merges them (the first
source wins on a name clash):
  1. the spec's `users:` list (seed/spec.py reads it into `UserSpec`s, validated against ROLES
     and AUTH_KINDS defined here);
  2. `seedctl users add` (the registry `<secrets_dir>/users.json`, {name: role} or
     {name: {role, auth}} for an nkey user);
  3. nodes enrolled by request in static mode (seed/enroll.py's `enrolled.json`: public key only).
Operator mode has none of these in the config: nodes are user JWTs whose permissions
(`jwt_permissions`) are signed by seed/enroll.py.

What each role may do on NATS is `permissions` (static config) and `jwt_permissions` (operator
mode): the only places roles become subjects.

A user's secret files in `<secrets_dir>/` (0700, every file 0600; the store is seed/secrets.py):
  <name>.password, <name>.bcrypt   a password user (the bcrypt hash is what the config holds)
  <name>.nk, <name>.pub            an nkey user: its seed (`SU...`) and public key (`U...`)
What an agent is handed (`seedctl users credentials`, PROTOCOL.md §1): `user:password` in
<name>.credentials or the seed in <name>.nk, and <name>.env (`env_lines`).
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from secrets import token_bytes
from typing import TYPE_CHECKING

import nkeys

from monitor_agent.protocol import (
    DERIVED_NODE_ID_RE,
    NODE_ID_RE,
    history_read_permissions,
    history_stream,
    node_inbox_prefix,
    node_publish_permission,
    subscribe_subject,
)

from . import secrets
from .secrets import SecretError, check_name, write_private

if TYPE_CHECKING:
    from .spec import Spec

ROLES = ("admin", "monitor", "observer", "enrolled", "custom")
# Roles `seedctl users add` may give (admin and custom are declared in the spec only).
ADDABLE_ROLES = ("monitor", "observer", "enrolled")
# password: bcrypt-hashed (cost 11: ~0.2 s of seed CPU per connection); nkey: Ed25519 challenge-response
# (no per-connection hashing, the secret never crosses the wire) for users with many connections.
AUTH_KINDS = ("password", "nkey")
REGISTRY = "users.json"
NKEY_SEED_LEN = 58
INBOX = "_INBOX.>"
# The FED-account user seedctl creates/updates the history stream with (spec `history:` only).
HISTORY_MANAGER = "seedctl-history"
_SUFFIXES = {"password": (".password", ".bcrypt"), "nkey": (".nk", ".pub")}


@dataclass(frozen=True, slots=True)
class UserSpec:
    name: str
    role: str
    publish: tuple[str, ...] = ()  # custom role only
    subscribe: tuple[str, ...] = ()  # custom role only
    password: str | None = None  # inline plaintext (discouraged: `seedctl check` flags it)
    password_file: Path | None = None
    auth: str = "password"  # password | nkey (seed in <secrets_dir>/<name>.nk)
    public_key: str | None = None  # an nkey user enrolled by request: only its public key is known


# ---- roles -> NATS permissions ----


def permissions(user: UserSpec, prefix: str, history: bool = False) -> dict[str, dict[str, list[str]]]:
    """The NATS permissions of a user's role in the static config."""
    fed = subscribe_subject(prefix)
    # Federation users subscribe to the federation subjects only: the agent makes no NATS
    # requests, so it needs no `_INBOX` replies, and without `_INBOX.>` no member can read the
    # replies meant for another client of the account (PROTOCOL.md §1). Reading the history
    # stream (spec `history:`) is request/reply: only then do they get `_INBOX.>`.
    receive = {"allow": [fed, INBOX] if history else [fed]}
    # With `history:` receivers may also read (never purge or delete) the task history stream.
    read = history_read_permissions(prefix) if history else []
    if user.role == "admin":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if user.role == "history":
        stream = history_stream(prefix)
        verbs = ("STREAM.CREATE", "STREAM.UPDATE", "STREAM.INFO")
        return {"publish": {"allow": [f"$JS.API.{v}.{stream}" for v in verbs]}, "subscribe": {"allow": [INBOX]}}
    if user.role == "monitor":
        # Open federation: any node id may be published by the shared user (nothing outside tbfed.v1).
        return {"publish": {"allow": [fed, *read]}, "subscribe": receive}
    if user.role == "enrolled":
        return {"publish": {"allow": [node_publish_permission(user.name, prefix), *read]}, "subscribe": receive}
    if user.role == "observer":
        return {"publish": {"allow": read} if read else {"deny": [">"]}, "subscribe": receive}
    out: dict[str, dict[str, list[str]]] = {}
    if user.publish:
        out["publish"] = {"allow": list(user.publish)}
    if user.subscribe:
        out["subscribe"] = {"allow": list(user.subscribe)}
    return out


def jwt_permissions(node_id: str, prefix: str) -> dict[str, dict[str, list[str]]]:
    """An enrolled node's permissions in its operator-mode user JWT (`pub`/`sub` claims): its own
    subjects, the federation's, and replies on its own inbox only."""
    return {
        "pub": {"allow": [node_publish_permission(node_id, prefix)]},
        "sub": {"allow": [subscribe_subject(prefix), node_inbox_prefix(node_id) + ".>"]},
    }


def default_role(name: str) -> str | None:
    """The role `seedctl users add NAME` gives without --role: enrolled for a node-... nodeId."""
    return "enrolled" if NODE_ID_RE.match(name) and name.startswith("node-") else None


# ---- who the users are ----


def find(spec: Spec, name: str) -> UserSpec | None:
    """The effective user `name`, or None."""
    return next((u for u in effective_users(spec) if u.name == name), None)


def effective_users(spec: Spec) -> list[UserSpec]:
    """The spec's users, then those added with `seedctl users add` (the spec wins on a name clash),
    then nodes enrolled by request in static mode."""
    from . import enroll
    from .spec import SpecError

    users = list(spec.users)
    known = {u.name for u in users}
    registry = _registry(spec.secrets_dir)
    for name, (role, auth) in registry.items():
        if name in known:
            continue
        if role not in ROLES or role in ("admin", "custom"):
            raise SpecError(spec.secrets_dir / REGISTRY, None, name, f"role {role!r} cannot be added there")
        users.append(UserSpec(name=name, role=role, auth=auth))
    known = {u.name for u in users}
    for node_id, key in enroll.static_users(spec).items():  # enrolled by request: public key only
        if node_id not in known:
            users.append(UserSpec(name=node_id, role="enrolled", auth="nkey", public_key=key))
    return users


def history_manager(spec: Spec) -> UserSpec | None:
    """The FED-account user `seedctl` manages the history stream with (password in the secrets dir)."""
    if spec.history is None or spec.auth.operator:
        return None
    return UserSpec(name=HISTORY_MANAGER, role="history")


def config_users(spec: Spec) -> list[UserSpec]:
    """Every user the server config lists: the effective users, then the history manager."""
    users = [] if spec.auth.operator else effective_users(spec)
    manager = history_manager(spec)
    return users + [manager] if manager else users


# ---- credentials ----


def user_password(spec: Spec, user: UserSpec, create: bool = True) -> str:
    """The plaintext password of a user: inline, from its password_file, or the secrets dir."""
    from .spec import SpecError

    if user.auth == "nkey":
        raise SecretError(
            f"user {user.name!r} authenticates with an nkey and has no password "
            f"(its seed: {nkey_seed_path(spec.secrets_dir, user.name)})"
        )
    if user.password is not None:
        return user.password
    if user.password_file is not None:
        text = user.password_file.read_text(encoding="utf-8").strip()
        if not text:
            raise SpecError(spec.path, None, f"users.{user.name}.password_file", f"{user.password_file} is empty")
        return text
    return secrets.password(spec.secrets_dir, user.name, create=create)


def has_password(spec: Spec, user: UserSpec) -> bool:
    """A password user whose password exists already (declared in the spec or stored)."""
    return (
        user.password is not None
        or user.password_file is not None
        or secrets.password_path(spec.secrets_dir, user.name).exists()
    )


def user_hash(spec: Spec, user: UserSpec) -> str:
    """What the server config holds for a user: its bcrypt hash, or its public nkey (`U...`)."""
    if user.public_key:
        return user.public_key
    if user.auth == "nkey":
        return nkey_public(spec.secrets_dir, user.name)
    return secrets.hash_password(spec.secrets_dir, user.name, user_password(spec, user))


def all_hashes(spec: Spec) -> dict[str, str]:
    """Every user's server-side credential: bcrypt hash (cached in the secrets dir) or public nkey."""
    if spec.auth.operator:  # no users in an operator-mode config
        return {}
    return {u.name: user_hash(spec, u) for u in config_users(spec)}


def credentials_text(spec: Spec, user: UserSpec, create: bool = True) -> str:
    """The content of a monitor's FEDERATION_CREDENTIALS file: `user:password`, or the nkey seed."""
    if user.public_key:
        raise SecretError(
            f"{user.name} was enrolled by request: its key stays on the node (its credentials file came "
            "from `seedctl enroll approve`)"
        )
    if user.auth == "nkey":
        return nkey_seed(spec.secrets_dir, user.name, create=create)
    return f"{user.name}:{user_password(spec, user, create=create)}"


def nats_login(spec: Spec, user: UserSpec) -> dict[str, str]:
    """nats-py connect options that log in as `user` (an nkey seed or user/password); never mints."""
    if user.auth == "nkey":
        return {"nkeys_seed_str": nkey_seed(spec.secrets_dir, user.name, create=False)}
    return {"user": user.name, "password": user_password(spec, user, create=False)}


def write_credentials(spec: Spec, user: UserSpec, out: Path) -> tuple[Path, str]:
    """A user's FEDERATION_CREDENTIALS file in `out` (0600): (path, "user:password" | "nkey seed")."""
    if user.auth == "nkey":
        return write_nkey_file(Path(out) / f"{user.name}.nk", credentials_text(spec, user)), "nkey seed"
    value = user_password(spec, user, create=True)
    return write_credentials_file(Path(out) / f"{user.name}.credentials", user.name, value), "user:password"


def write_credentials_file(path: Path, user: str, value: str) -> Path:
    """A `user:password` file for FEDERATION_CREDENTIALS (PROTOCOL.md §1), mode 0600."""
    write_private(Path(path), f"{user}:{value}\n")
    return Path(path)


def write_nkey_file(path: Path, seed: str) -> Path:
    """An NKEY seed file for FEDERATION_CREDENTIALS (PROTOCOL.md §1): the seed alone, mode 0600."""
    nkey_public_key(seed)
    write_private(Path(path), seed.strip() + "\n")
    return Path(path)


def env_lines(spec: Spec, credentials_name: str, seed_urls: str | None = None) -> list[str]:
    """The settings of a node's env file beside its credentials file (relative to it: nothing of
    the seed operator's machine travels with the hand-off)."""
    lines = [
        f"FEDERATION_SEED_URL={seed_urls or ','.join(spec.client_urls)}",
        f"FEDERATION_CREDENTIALS={credentials_name}",
        f"FEDERATION_SUBJECT_PREFIX={spec.subject_prefix}",
    ]
    if spec.tls:
        lines.append("FEDERATION_TLS_ENABLED=true")
    return lines


def role_env_lines(user: UserSpec) -> list[str]:
    """What a user's role adds to its env file: sharing off for an observer, the node id for an
    enrolled user with a custom name."""
    if user.role == "observer":
        return ["FEDERATION_BROADCAST_TASKS=false", "FEDERATION_BROADCAST_STATS=false"]
    if user.role == "enrolled":
        if DERIVED_NODE_ID_RE.match(user.name):
            # A derived id cannot be chosen: only the node whose key hashes to it may use this user.
            return [
                f"# Only the node whose key derives {user.name} can publish as this user "
                "(no FEDERATION_NODE_ID needed)."
            ]
        return [f"FEDERATION_NODE_ID={user.name}"]
    return []


# ---- nkeys ----


def nkey_seed_path(secrets_dir: Path, name: str) -> Path:
    return Path(secrets_dir) / f"{check_name(name)}.nk"


def generate_nkey_seed() -> str:
    """A fresh NKEY user seed (`SU...`): Ed25519, the format `nk -gen user` writes."""
    return nkeys.encode_seed(token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()


def nkey_public_key(seed: str) -> str:
    """The public key (`U...`) of a user seed; SecretError (never quoting the seed) if it is not one."""
    seed = seed.strip()
    if not seed.startswith("SU") or len(seed) != NKEY_SEED_LEN:
        raise SecretError(f"not an NKEY user seed (one line of {NKEY_SEED_LEN} characters starting SU)")
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
        if nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:  # nkeys.from_seed does not check it
            raise ValueError("checksum mismatch")
        return nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
    except (nkeys.NkeysError, ValueError) as exc:
        raise SecretError(f"not a valid NKEY user seed ({exc})") from None


def nkey_seed(secrets_dir: Path, name: str, create: bool = True) -> str:
    """The NKEY user seed of `name`, generated and stored (0600, with `<name>.pub`) on first use."""
    path = nkey_seed_path(secrets_dir, name)
    existed = path.exists()
    missing = f"no nkey for {name!r} in {secrets_dir} (run: seedctl users add {name} --auth nkey)"
    value = secrets.stored(path, create, generate_nkey_seed, missing) or ""
    if not existed:
        write_private(Path(secrets_dir) / f"{name}.pub", nkey_public_key(value) + "\n")
        return value
    try:
        nkey_public_key(value)
    except SecretError as exc:
        raise SecretError(f"{path}: {exc}: delete it to generate a new one") from None
    return value


def nkey_public(secrets_dir: Path, name: str, create: bool = True) -> str:
    """The public key (`U...`) of `name`'s stored seed (derived from the seed, so never stale)."""
    public = nkey_public_key(nkey_seed(secrets_dir, name, create=create))
    pub_path = Path(secrets_dir) / f"{check_name(name)}.pub"
    try:
        current = pub_path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = None
    if current != public:  # keep the published half next to the seed, for operators and audits
        write_private(pub_path, public + "\n")
    return public


def has_nkey(secrets_dir: Path, name: str) -> bool:
    return nkey_seed_path(secrets_dir, name).exists()


def _names_with(secrets_dir: Path, suffix: str) -> list[str]:
    d = Path(secrets_dir)
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}"))


# ---- minting, rotating, removing ----


def mint(secrets_dir: Path, name: str, auth: str) -> tuple[str, bool]:
    """`name`'s secret of kind `auth`, made (and, for a password, hashed) if missing: (value, existed)."""
    if auth == "nkey":
        existed = has_nkey(secrets_dir, name)
        value = nkey_seed(secrets_dir, name, create=True)
        nkey_public(secrets_dir, name)
        return value, existed
    existed = secrets.password_path(secrets_dir, name).exists()
    value = secrets.password(secrets_dir, name, create=True)
    secrets.bcrypt_hash(secrets_dir, name)
    return value, existed


def secret_path(secrets_dir: Path, name: str, auth: str) -> Path:
    """The file holding `name`'s secret of kind `auth`."""
    return nkey_seed_path(secrets_dir, name) if auth == "nkey" else secrets.password_path(secrets_dir, name)


def rotate(secrets_dir: Path, name: str, auth: str) -> str:
    """A new secret of the same kind for `name` (the old one is deleted first); returns it."""
    for suffix in _SUFFIXES["nkey" if auth == "nkey" else "password"]:
        with contextlib.suppress(FileNotFoundError):
            (Path(secrets_dir) / f"{check_name(name)}{suffix}").unlink()
    return mint(secrets_dir, name, auth)[0]


def remove(secrets_dir: Path, name: str) -> bool:
    """Delete `name`'s password, hash, nkey and registry entry; True if anything was removed."""
    removed = False
    for suffix in _SUFFIXES["password"] + _SUFFIXES["nkey"]:
        with contextlib.suppress(FileNotFoundError):
            (Path(secrets_dir) / f"{check_name(name)}{suffix}").unlink()
            removed = True
    reg = _registry(secrets_dir)
    if name in reg:
        del reg[name]
        _write_registry(secrets_dir, reg)
        removed = True
    return removed


def stray_names(secrets_dir: Path, users: set[str]) -> list[str]:
    """Names with a stored password or nkey seed that are no user (seedctl's own secrets excepted:
    `console*` and the history manager's, kept while `history:` is off so turning it on again
    needs no new password).

    A stray secret is dangerous: adding that name again would silently bring the old secret back.
    """
    names = set(_names_with(secrets_dir, ".password")) | set(_names_with(secrets_dir, ".nk"))
    return sorted(n for n in names - users if not n.startswith("console") and n != HISTORY_MANAGER)


# ---- the registry of `seedctl users add` ----


def registered_users(secrets_dir: Path) -> dict[str, str]:
    """{name: role} of users added with `seedctl users add`."""
    return {name: role for name, (role, _auth) in _registry(secrets_dir).items()}


def registered_auth(secrets_dir: Path) -> dict[str, str]:
    """{name: "password" | "nkey"} of users added with `seedctl users add`."""
    return {name: auth for name, (_role, auth) in _registry(secrets_dir).items()}


def register_user(secrets_dir: Path, name: str, role: str, auth: str = "password") -> None:
    if auth not in AUTH_KINDS:
        raise SecretError(f"auth {auth!r} is not one of {', '.join(AUTH_KINDS)}")
    reg = _registry(secrets_dir)
    reg[check_name(name)] = (role, auth)
    _write_registry(secrets_dir, reg)


def _registry(secrets_dir: Path) -> dict[str, tuple[str, str]]:
    path = Path(secrets_dir) / REGISTRY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SecretError(f"{path} is unreadable ({exc}): fix or delete it") from None
    problem = f"{path} must hold a JSON object of user name -> role (or {{role, auth}})"
    if not isinstance(data, dict):
        raise SecretError(problem)
    out: dict[str, tuple[str, str]] = {}
    for name, entry in data.items():
        if isinstance(entry, str):  # the original form: a password user
            out[name] = (entry, "password")
        elif (
            isinstance(entry, dict)
            and isinstance(entry.get("role"), str)
            and entry.get("auth", "password") in AUTH_KINDS
        ):
            out[name] = (entry["role"], entry.get("auth", "password"))
        else:
            raise SecretError(problem)
    return dict(sorted(out.items()))


def _write_registry(secrets_dir: Path, reg: dict[str, tuple[str, str]]) -> None:
    # Password users keep the original `name: role` form, so older seedctl versions still read it.
    data = {
        name: role if auth == "password" else {"role": role, "auth": auth}
        for name, (role, auth) in sorted(reg.items())
    }
    secrets.ensure_dir(Path(secrets_dir))
    write_private(Path(secrets_dir) / REGISTRY, json.dumps(data, indent=2) + "\n")
