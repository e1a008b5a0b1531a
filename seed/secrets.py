"""The secrets directory: generated passwords, cached bcrypt hashes, users added by `seedctl users`.

Layout of `<secrets_dir>/` (directory 0700, every file 0600):
  <name>.password   the password, one line (generated on demand: 32 url-safe chars)
  <name>.bcrypt     `sha256:<hex of the password> <bcrypt hash>`: the hash is re-used while the
                    password is unchanged, so renders are fast and the config digest is stable
  <name>.nk         an NKEY user's seed (`SU...`, one line): the secret an nkey user signs with
  <name>.pub        that user's public key (`U...`): what the server config holds
  route.secret      the cluster's route password (one line): every seed opens and accepts routes
                    with it; route.secret.next holds its successor while a rotation runs
  users.json        {name: role} of users added with `seedctl users add` (beside the spec's users);
                    an nkey user's entry is {"role": role, "auth": "nkey"}
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets as _random
from pathlib import Path

import bcrypt
import nkeys

from monitor_agent.files import write_private  # noqa: F401 - seed's callers use secrets.write_private

BCRYPT_COST = 11
PASSWORD_BYTES = 24  # token_urlsafe(24) -> 32 characters
MIN_PASSWORD_LEN = 24
REGISTRY = "users.json"
AUTH_KINDS = ("password", "nkey")
NKEY_SEED_LEN = 58
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SecretError(Exception):
    """A missing or unusable secret; the message says which and what to do."""


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise SecretError(f"invalid secret name {name!r}: use letters, digits, _ . - (max 64)")
    return name


def ensure_dir(secrets_dir: Path) -> Path:
    secrets_dir = Path(secrets_dir)
    try:
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SecretError(
            f"secrets_dir {str(secrets_dir)!r} cannot be created: {exc.strerror or exc}"
        ) from None
    with contextlib.suppress(OSError):  # not ours to chmod (e.g. a shared mount): keep going
        os.chmod(secrets_dir, 0o700)
    return secrets_dir


def generate_password() -> str:
    return _random.token_urlsafe(PASSWORD_BYTES)


def password_path(secrets_dir: Path, name: str) -> Path:
    return Path(secrets_dir) / f"{_check_name(name)}.password"


def password(secrets_dir: Path, name: str, create: bool = True) -> str:
    """The password of `name`, generated and stored (0600) on first use when `create`."""
    path = password_path(secrets_dir, name)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise SecretError(
                f"no password for {name!r} in {secrets_dir} (run: seedctl users add {name})"
            ) from None
        value = generate_password()
        ensure_dir(Path(secrets_dir))
        write_private(path, value + "\n")
        return value
    if not value:
        raise SecretError(f"{path} is empty: delete it to generate a new password, or write one in it")
    return value


def set_password(secrets_dir: Path, name: str, value: str) -> None:
    """Store an operator-chosen password (at least MIN_PASSWORD_LEN characters)."""
    value = value.strip()
    if len(value) < MIN_PASSWORD_LEN:
        raise SecretError(f"password for {name!r} is too short: at least {MIN_PASSWORD_LEN} characters")
    if any(c.isspace() or c in "\"'@:/" for c in value):
        raise SecretError(f"password for {name!r} must not contain spaces, quotes, '@', ':' or '/'")
    ensure_dir(Path(secrets_dir))
    write_private(password_path(secrets_dir, name), value + "\n")


ROUTE_SECRET = "route.secret"
ROUTE_SECRET_NEXT = "route.secret.next"


def route_password(secrets_dir: Path, create: bool = True, file_name: str = ROUTE_SECRET) -> str:
    """The cluster route password (`route.secret`), generated on first use when `create`."""
    path = Path(secrets_dir) / file_name
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise SecretError(f"no route password in {path} (run: seedctl render)") from None
        value = generate_password()
        ensure_dir(Path(secrets_dir))
        write_private(path, value + "\n")
        return value
    if not value:
        raise SecretError(f"{path} is empty: delete it to generate a new route password")
    return value


def promote_route_password(secrets_dir: Path) -> None:
    """End of a route rotation: route.secret.next becomes route.secret."""
    os.replace(Path(secrets_dir) / ROUTE_SECRET_NEXT, Path(secrets_dir) / ROUTE_SECRET)


def _fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def hash_password(secrets_dir: Path, name: str, value: str, cost: int = BCRYPT_COST) -> str:
    """bcrypt hash of `value`, cached in `<name>.bcrypt` while the password stays the same."""
    path = Path(secrets_dir) / f"{_check_name(name)}.bcrypt"
    fp = _fingerprint(value)
    try:
        cached_fp, cached = path.read_text(encoding="utf-8").split()
        if cached_fp == fp and cached.startswith("$2") and int(cached.split("$")[2]) >= cost:
            return cached
    except (FileNotFoundError, ValueError, IndexError):
        pass
    hashed = bcrypt.hashpw(value.encode(), bcrypt.gensalt(rounds=cost)).decode()
    ensure_dir(Path(secrets_dir))
    write_private(path, f"{fp} {hashed}\n")
    return hashed


def bcrypt_hash(secrets_dir: Path, name: str, create: bool = True) -> str:
    """bcrypt hash (cost >= 11) of `name`'s stored password; cached."""
    return hash_password(secrets_dir, name, password(secrets_dir, name, create=create))


def nkey_seed_path(secrets_dir: Path, name: str) -> Path:
    return Path(secrets_dir) / f"{_check_name(name)}.nk"


def generate_nkey_seed() -> str:
    """A fresh NKEY user seed (`SU...`): Ed25519, the format `nk -gen user` writes."""
    return nkeys.encode_seed(_random.token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()


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
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise SecretError(
                f"no nkey for {name!r} in {secrets_dir} (run: seedctl users add {name} --auth nkey)"
            ) from None
        value = generate_nkey_seed()
        ensure_dir(Path(secrets_dir))
        write_private(path, value + "\n")
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
    pub_path = Path(secrets_dir) / f"{_check_name(name)}.pub"
    try:
        current = pub_path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = None
    if current != public:  # keep the published half next to the seed, for operators and audits
        write_private(pub_path, public + "\n")
    return public


def list_nkey_names(secrets_dir: Path) -> list[str]:
    """Names that have a stored NKEY seed."""
    d = Path(secrets_dir)
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(".nk")] for p in d.glob("*.nk"))


def list_names(secrets_dir: Path) -> list[str]:
    """Names that have a stored password."""
    d = Path(secrets_dir)
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(".password")] for p in d.glob("*.password"))


def remove(secrets_dir: Path, name: str) -> bool:
    """Delete `name`'s password, hash, nkey and registry entry; True if anything was removed."""
    removed = False
    for suffix in (".password", ".bcrypt", ".nk", ".pub"):
        with contextlib.suppress(FileNotFoundError):
            (Path(secrets_dir) / f"{_check_name(name)}{suffix}").unlink()
            removed = True
    reg = _registry(secrets_dir)
    if name in reg:
        del reg[name]
        _write_registry(secrets_dir, reg)
        removed = True
    return removed


def rotate(secrets_dir: Path, name: str, auth: str) -> str:
    """A new secret of the same kind for `name` (the old one is deleted first); returns it."""
    d = Path(secrets_dir)
    suffixes = (".nk", ".pub") if auth == "nkey" else (".password", ".bcrypt")
    for suffix in suffixes:
        with contextlib.suppress(FileNotFoundError):
            (d / f"{_check_name(name)}{suffix}").unlink()
    if auth == "nkey":
        return nkey_seed(d, name, create=True)
    value = password(d, name, create=True)
    bcrypt_hash(d, name)
    return value


def stray_names(secrets_dir: Path, users: set[str]) -> list[str]:
    """Names with a stored password or nkey seed that are no user (`console*` secrets excepted).

    A stray secret is dangerous: adding that name again would silently bring the old secret back.
    """
    names = set(list_names(secrets_dir)) | set(list_nkey_names(secrets_dir))
    return sorted(n for n in names - users if not n.startswith("console"))


def registered_users(secrets_dir: Path) -> dict[str, str]:
    """{name: role} of users added with `seedctl users add`."""
    return {name: role for name, (role, _auth) in _registry(secrets_dir).items()}


def registered_auth(secrets_dir: Path) -> dict[str, str]:
    """{name: "password" | "nkey"} of users added with `seedctl users add`."""
    return {name: auth for name, (_role, auth) in _registry(secrets_dir).items()}


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


def register_user(secrets_dir: Path, name: str, role: str, auth: str = "password") -> None:
    if auth not in AUTH_KINDS:
        raise SecretError(f"auth {auth!r} is not one of {', '.join(AUTH_KINDS)}")
    reg = _registry(secrets_dir)
    reg[_check_name(name)] = (role, auth)
    _write_registry(secrets_dir, reg)


def _write_registry(secrets_dir: Path, reg: dict) -> None:
    # Password users keep the original `name: role` form, so older seedctl versions still read it.
    data = {
        name: role if auth == "password" else {"role": role, "auth": auth}
        for name, (role, auth) in sorted(reg.items())
    }
    ensure_dir(Path(secrets_dir))
    write_private(Path(secrets_dir) / REGISTRY, json.dumps(data, indent=2) + "\n")


def write_credentials_file(path: Path, user: str, value: str) -> Path:
    """A `user:password` file for FEDERATION_CREDENTIALS (PROTOCOL.md §1), mode 0600."""
    write_private(Path(path), f"{user}:{value}\n")
    return Path(path)


def write_nkey_file(path: Path, seed: str) -> Path:
    """An NKEY seed file for FEDERATION_CREDENTIALS (PROTOCOL.md §1): the seed alone, mode 0600."""
    nkey_public_key(seed)
    write_private(Path(path), seed.strip() + "\n")
    return Path(path)
