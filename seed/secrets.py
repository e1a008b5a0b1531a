"""The secrets directory: the store of named secret files (who holds which is seed/users.py).

Layout of `<secrets_dir>/` (directory 0700, every file 0600):
  <name>.password   a password, one line (generated on demand: 32 url-safe chars): users', the
                    console's operator password, session key and metrics token
  <name>.bcrypt     `sha256:<hex of the password> <bcrypt hash>`: the hash is re-used while the
                    password is unchanged, so renders are fast and the config digest is stable
  route.secret      the cluster's route password (one line): every seed opens and accepts routes
                    with it; route.secret.next holds its successor while a rotation runs
  <name>.nk, <name>.pub, users.json   users' nkeys and the `seedctl users add` registry: seed/users.py
  enrolled.json, operator/            enrollment: seed/enroll.py
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets as _random
from collections.abc import Callable
from pathlib import Path

import bcrypt

from monitor_agent.files import write_private  # noqa: F401 - seed's callers use secrets.write_private

BCRYPT_COST = 11
PASSWORD_BYTES = 24  # token_urlsafe(24) -> 32 characters
MIN_PASSWORD_LEN = 24
# A secret's name (a user's, a server's): it becomes a file name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SecretError(Exception):
    """A missing or unusable secret; the message says which and what to do."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
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
    return Path(secrets_dir) / f"{check_name(name)}.password"


def stored(path: Path, create: bool, make: Callable[[], str], missing: str) -> str | None:
    """The one-line secret in `path`; when there is none, `make()` stored there (0600) if `create`,
    else SecretError(`missing`). None if the file is empty (the caller says what to do)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise SecretError(missing) from None
        value = make()
        ensure_dir(path.parent)
        write_private(path, value + "\n")
        return value
    return value or None


def password(secrets_dir: Path, name: str, create: bool = True) -> str:
    """The password of `name`, generated and stored (0600) on first use when `create`."""
    path = password_path(secrets_dir, name)
    missing = f"no password for {name!r} in {secrets_dir} (run: seedctl users add {name})"
    value = stored(path, create, generate_password, missing)
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
    value = stored(path, create, generate_password, f"no route password in {path} (run: seedctl render)")
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
    path = Path(secrets_dir) / f"{check_name(name)}.bcrypt"
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

