"""The secrets directory: generated passwords, cached bcrypt hashes, users added by `seedctl users`.

Layout of `<secrets_dir>/` (directory 0700, every file 0600):
  <name>.password   the password, one line (generated on demand: 32 url-safe chars)
  <name>.bcrypt     `sha256:<hex of the password> <bcrypt hash>`: the hash is re-used while the
                    password is unchanged, so renders are fast and the config digest is stable
  users.json        {name: role} of users added with `seedctl users add` (beside the spec's users)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets as _random
import tempfile
from pathlib import Path

import bcrypt

BCRYPT_COST = 11
PASSWORD_BYTES = 24  # token_urlsafe(24) -> 32 characters
MIN_PASSWORD_LEN = 24
REGISTRY = "users.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SecretError(Exception):
    """A missing or unusable secret; the message says which and what to do."""


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise SecretError(f"invalid secret name {name!r}: use letters, digits, _ . - (max 64)")
    return name


def ensure_dir(secrets_dir: Path) -> Path:
    secrets_dir = Path(secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # not ours to chmod (e.g. a shared mount): keep going
        os.chmod(secrets_dir, 0o700)
    return secrets_dir


def write_private(path: Path, text: str) -> None:
    """Atomically write `text` to `path` with mode 0600 (never world-readable, even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def list_names(secrets_dir: Path) -> list[str]:
    """Names that have a stored password."""
    d = Path(secrets_dir)
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(".password")] for p in d.glob("*.password"))


def remove(secrets_dir: Path, name: str) -> bool:
    """Delete `name`'s password, hash and registry entry; True if anything was removed."""
    removed = False
    for suffix in (".password", ".bcrypt"):
        with contextlib.suppress(FileNotFoundError):
            (Path(secrets_dir) / f"{_check_name(name)}{suffix}").unlink()
            removed = True
    reg = registered_users(secrets_dir)
    if name in reg:
        del reg[name]
        _write_registry(secrets_dir, reg)
        removed = True
    return removed


def registered_users(secrets_dir: Path) -> dict[str, str]:
    """{name: role} of users added with `seedctl users add`."""
    path = Path(secrets_dir) / REGISTRY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SecretError(f"{path} is unreadable ({exc}): fix or delete it") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise SecretError(f"{path} must hold a JSON object of user name -> role")
    return dict(sorted(data.items()))


def register_user(secrets_dir: Path, name: str, role: str) -> None:
    reg = registered_users(secrets_dir)
    reg[_check_name(name)] = role
    _write_registry(secrets_dir, reg)


def _write_registry(secrets_dir: Path, reg: dict[str, str]) -> None:
    ensure_dir(Path(secrets_dir))
    write_private(Path(secrets_dir) / REGISTRY, json.dumps(dict(sorted(reg.items())), indent=2) + "\n")


def write_credentials_file(path: Path, user: str, value: str) -> Path:
    """A `user:password` file for FEDERATION_CREDENTIALS (PROTOCOL.md §1), mode 0600."""
    write_private(Path(path), f"{user}:{value}\n")
    return Path(path)
