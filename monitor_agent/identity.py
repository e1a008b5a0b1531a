"""The node's federation identity: Ed25519 key, secret salt, nodeId (PROTOCOL.md §2, §3).

`load_identity(data_dir, node_id=None) -> Identity` creates on first start
`DATA_DIR/node.key` (PKCS#8 PEM, mode 0600) and `DATA_DIR/node.salt` (32 random bytes,
hex, mode 0600). The nodeId is `node-` + the first 10 hex of SHA-256(public key) unless
`FEDERATION_NODE_ID` gives another (validated: FED_005; a `node-<10 hex>` id that is not this
key's derived id is refused, since receivers would drop all its messages).

`Identity.sign(payload) -> str` (base64url, no padding), `Identity.task_id(execution_id)`
(`global-task-` + 12 hex of HMAC-SHA256(salt, execution id)); `verify(key_b64, sig_b64,
payload) -> bool` and `node_id_for_key(raw)` serve receivers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from .errors import FederationError
from .protocol import DERIVED_NODE_ID_RE, NODE_ID_RE, FedCode

KEY_FILE = "node.key"
SALT_FILE = "node.salt"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError on garbage."""
    if not isinstance(text, str) or len(text) > 200:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def node_id_for_key(public_raw: bytes) -> str:
    """The derived nodeId of a raw 32-byte Ed25519 public key."""
    return "node-" + hashlib.sha256(public_raw).hexdigest()[:10]


def verify(key_b64: str, sig_b64: str, payload: bytes) -> bool:
    """True if `sig_b64` is a valid Ed25519 signature of `payload` by `key_b64`."""
    try:
        VerifyKey(b64url_decode(key_b64)).verify(payload, b64url_decode(sig_b64))
        return True
    except (ValueError, TypeError, BadSignatureError, CryptoError):
        return False


@dataclass(frozen=True)
class Identity:
    private_key: SigningKey = field(repr=False)  # libsodium (PyNaCl), as the receivers verify
    public_raw: bytes
    salt: bytes = field(repr=False)
    node_id: str
    derived: bool  # nodeId derived from the key (receivers can check it)

    @property
    def public_b64(self) -> str:
        return b64url(self.public_raw)

    @property
    def seed(self) -> bytes:
        """The 32-byte Ed25519 private seed (for an nkey of the same key)."""
        return bytes(self.private_key)

    def sign_raw(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data`."""
        return self.private_key.sign(data).signature

    def sign(self, payload: bytes) -> str:
        return b64url(self.sign_raw(payload))

    def task_id(self, execution_id: str) -> str:
        digest = hmac.new(self.salt, execution_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return "global-task-" + digest[:12]

    def headers(self, payload: bytes) -> dict[str, str]:
        """The two signature headers of PROTOCOL.md §3 for this exact payload."""
        return {"Tbf-Key": self.public_b64, "Tbf-Sig": self.sign(payload)}


def _write_secret(path: Path, data: bytes) -> None:
    """Create a 0600 file atomically; never overwrite an existing one."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _tighten(path: Path) -> None:
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def load_identity(data_dir: str | Path, node_id: str | None = None) -> Identity:
    """Load (or create on first start) the node key and salt in `data_dir`."""
    if node_id is not None and not NODE_ID_RE.match(node_id):
        raise FederationError(
            FedCode.INVALID_NODE_ID,
            f"invalid FEDERATION_NODE_ID {node_id!r}: expected ^[a-z0-9][a-z0-9-]{{2,62}}$",
        )
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new data dir is the owner's only
    key_path, salt_path = data_dir / KEY_FILE, data_dir / SALT_FILE
    if not key_path.exists():
        _write_secret(key_path, _pkcs8_pem(secrets.token_bytes(32)))
    if not salt_path.exists():
        _write_secret(salt_path, secrets.token_hex(32).encode("ascii") + b"\n")
    _tighten(key_path)
    _tighten(salt_path)
    private = SigningKey(_read_seed(key_path))
    try:
        salt = bytes.fromhex(salt_path.read_text(encoding="ascii").strip())
    except ValueError as exc:
        raise FederationError(FedCode.INVALID_NODE_ID, f"{salt_path} is not a hex salt") from exc
    if len(salt) < 16:
        raise FederationError(FedCode.INVALID_NODE_ID, f"{salt_path} holds a salt shorter than 16 bytes")
    public_raw = bytes(private.verify_key)
    derived = node_id_for_key(public_raw)
    if node_id is not None and node_id != derived and DERIVED_NODE_ID_RE.match(node_id):
        # Receivers check that a node-<10 hex> id is its key's hash: every message would be dropped
        # (key_mismatch) while this node looked CONNECTED. Refuse before anything is sent.
        raise FederationError(
            FedCode.INVALID_NODE_ID,
            f"FEDERATION_NODE_ID={node_id} looks derived but this node's key ({key_path}) derives "
            f"{derived}: receivers would drop every message. Unset FEDERATION_NODE_ID (this node is "
            f"{derived}; an enrolled user must be named so), or use a custom id that is not node-<10 hex>",
        )
    return Identity(private, public_raw, salt, node_id or derived, node_id is None or node_id == derived)


# PKCS#8 v1 of an Ed25519 private key (RFC 8410): this prefix, then the 32-byte seed. The form
# `cryptography` and `openssl genpkey -algorithm ed25519` write, and the one written here.
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def _pkcs8_pem(seed: bytes) -> bytes:
    der = _PKCS8_ED25519_PREFIX + seed
    return _PEM_BEGIN + b"\n" + base64.b64encode(der) + b"\n" + _PEM_END + b"\n"


def _read_seed(key_path: Path) -> bytes:
    """The Ed25519 seed in a PEM key file. The usual form is read here; any other goes through
    `cryptography` (imported only then: it would cost the agent 8 MB of memory)."""
    pem = key_path.read_bytes()
    body = pem.strip()
    if body.startswith(_PEM_BEGIN) and body.endswith(_PEM_END):
        try:
            der = base64.b64decode(b"".join(body[len(_PEM_BEGIN) : -len(_PEM_END)].split()), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        if len(der) == 48 and der.startswith(_PKCS8_ED25519_PREFIX):
            return der[len(_PKCS8_ED25519_PREFIX) :]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise FederationError(
            FedCode.INVALID_NODE_ID, f"{key_path} is not a readable node key: {exc}"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise FederationError(FedCode.INVALID_NODE_ID, f"{key_path} is not an Ed25519 key")
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
