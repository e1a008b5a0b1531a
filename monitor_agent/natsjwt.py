"""NATS JWTs (nats-io/jwt v2) and NKEY public keys: the small codec both halves share.

A NATS JWT is `base64url(header).base64url(claims).base64url(signature)` with the header
`{"typ":"JWT","alg":"ed25519-nkey"}`; the signature is Ed25519 over the first two parts by the
issuer's NKEY, and the claims name the issuer's public key (`iss`). `jti` is base32 (no padding)
of SHA-512/256 of the claims JSON with `jti` empty, as nats-io/jwt computes it. nats-server
is the oracle the tests hold this code to (tests/seed/test_operator_mode.py).

The agent uses `decode` to read its own user JWT (subject, expiry) and `user_public_key` to
present its Ed25519 node key as an NKEY user (`U...`); `seedctl` (seed/enroll.py) signs with
`encode`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass

import nkeys

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
MAX_TOKEN = 64 * 1024

PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}


class JWTError(ValueError):
    """A token that is not a well-formed, correctly signed NATS JWT (message says what)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError("not base64url") from exc


def encode_public_key(kind: str, raw: bytes) -> str:
    """The NKEY text (`U...`, `A...`, `O...`) of a raw 32-byte Ed25519 public key."""
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    src = bytearray([PREFIX[kind]]) + bytearray(raw)
    src += nkeys.crc16(src).to_bytes(2, "little")
    return base64.b32encode(bytes(src)).decode("ascii")


def user_public_key(raw: bytes) -> str:
    """An Ed25519 public key as a NATS NKEY user (`U...`): what a node's key is to the server."""
    return encode_public_key("user", raw)


def decode_public_key(text: str, kind: str | None = None) -> tuple[str, bytes]:
    """(kind, raw 32 bytes) of an NKEY public key; JWTError if malformed, bad checksum or wrong kind."""
    if not isinstance(text, str) or len(text) != 56:
        raise JWTError("not an NKEY public key (56 characters)")
    try:
        raw = base64.b32decode(text)
    except (binascii.Error, ValueError):
        raise JWTError("not an NKEY public key (base32)") from None
    if len(raw) != 35 or nkeys.crc16(bytearray(raw[:-2])).to_bytes(2, "little") != raw[-2:]:
        raise JWTError("NKEY public key checksum mismatch")
    found = next((k for k, p in PREFIX.items() if p == raw[0]), None)
    if found is None or (kind is not None and found != kind):
        raise JWTError(f"not an NKEY {kind or 'operator, account or user'} public key")
    return found, raw[1:33]


def new_seed(kind: str) -> str:
    """A fresh NKEY seed (`SO...`, `SA...`, `SU...`) of 32 random bytes."""
    import secrets

    return nkeys.encode_seed(secrets.token_bytes(32), PREFIX[kind]).decode("ascii")


def keypair(seed: str) -> nkeys.KeyPair:
    return nkeys.from_seed(bytearray(seed.strip().encode("ascii")))


def public_of(seed: str) -> str:
    return keypair(seed).public_key.decode("ascii")


def jti(claims: dict) -> str:
    body = dict(claims, jti="")
    data = json.dumps(body, separators=(",", ":")).encode()
    return base64.b32encode(hashlib.new("sha512_256", data).digest()).decode().rstrip("=")


def encode(claims: dict, signer: nkeys.KeyPair, *, now: int | None = None) -> str:
    """Sign `claims` (sub, nats, optional exp/name) as the issuer `signer`: iss, iat, jti are set here."""
    body = dict(claims)
    body["iss"] = signer.public_key.decode("ascii")
    body["iat"] = int(time.time()) if now is None else int(now)
    body["jti"] = jti(body)
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signing_input = f"{head}.{payload}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}"


@dataclass(frozen=True)
class Token:
    claims: dict
    text: str

    @property
    def subject(self) -> str:
        return self.claims.get("sub", "")

    @property
    def issuer(self) -> str:
        return self.claims.get("iss", "")

    @property
    def kind(self) -> str:
        return (self.claims.get("nats") or {}).get("type", "")

    @property
    def expires(self) -> int | None:
        exp = self.claims.get("exp")
        return int(exp) if isinstance(exp, int) and exp > 0 else None

    @property
    def issued_at(self) -> int:
        return int(self.claims.get("iat") or 0)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) > self.expires


def decode(text: str) -> Token:
    """Parse and verify (signature by `iss`) a NATS v2 JWT; expiry is the caller's to judge."""
    text = (text or "").strip()
    if len(text) > MAX_TOKEN:
        raise JWTError("token too large")
    parts = text.split(".")
    if len(parts) != 3:
        raise JWTError("not a JWT (expected three dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise JWTError(f"not a JWT ({exc})") from None
    if not isinstance(header, dict) or str(header.get("typ", "")).upper() != "JWT":
        raise JWTError("not a JWT header")
    if str(header.get("alg", "")).lower() != "ed25519-nkey":
        raise JWTError(f"unsupported algorithm {header.get('alg')!r}")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise JWTError("claims without an issuer")
    _kind, raw = decode_public_key(claims["iss"])
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(raw).verify(f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2]))
    except BadSignatureError:
        raise JWTError(f"signature does not verify against its issuer {claims['iss']}") from None
    return Token(claims, text)


def read_user_jwt(text: str) -> str | None:
    """The user JWT in a FEDERATION_CREDENTIALS file that holds one without a seed, else None.

    Accepted: the bare token on a line (`#` comment lines around it), or the token between the
    `-----BEGIN NATS USER JWT-----` lines of a .creds file whose seed section is absent.
    """
    if "NKEY SEED" in text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("eyJ") and line.count(".") == 2:
            return line
    return None
