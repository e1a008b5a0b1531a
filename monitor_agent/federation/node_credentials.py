"""Credentials from `seedctl enroll approve`: the node's own Ed25519 key is its NATS user.

FEDERATION_CREDENTIALS then names a file holding only public material:
  * a user JWT (operator mode), or
  * the node's public NKEY `U...` (static mode: the seed config lists that key).
Either way the agent answers the server's nonce with DATA_DIR/node.key, so no secret is in the
file or on the wire. The JWT file is re-read at every (re)connect, and `renewed()` tells the client
when the node operator put a renewed JWT in place, so it reconnects with it before the old one
expires. `explain()` turns the server's bare "Authorization Violation" into the reason: expired,
revoked, or issued for another node's key (FED_002, docs/troubleshooting.md).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from .. import natsjwt
from ..errors import FederationError
from ..identity import Identity, node_id_for_key
from ..protocol import FedCode, node_inbox_prefix
from ..timestamps import rfc3339

log = logging.getLogger("monitor_agent.federation")


def _when(ts: int | None) -> str:
    return rfc3339(ts) if ts else "never"


class NodeCredentials:
    def __init__(self, path: Path, kind: str, identity: Identity):
        self.path = Path(path)
        self.kind = kind  # "jwt" | "nodekey"
        self.identity = identity
        self.user_key = natsjwt.user_public_key(identity.public_raw)
        self.token: natsjwt.Token | None = None  # the JWT presented at the last (re)connect
        self.revoked: str | None = None  # jti of a token the server told us was revoked
        self._stamp: tuple[int, int] | None = None

    # ---- reading the file ----

    def _read(self) -> natsjwt.Token | str:
        text = self.path.read_text(encoding="utf-8")
        if self.kind == "nodekey":
            key = next(
                ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
            )
            return key
        raw = natsjwt.read_user_jwt(text)
        if raw is None:
            raise FederationError(FedCode.AUTH_FAILED, f"{self.path} holds no user JWT")
        try:
            return natsjwt.decode(raw)
        except natsjwt.JWTError as exc:
            raise FederationError(
                FedCode.AUTH_FAILED, f"the user JWT in {self.path} is invalid: {exc}"
            ) from None

    def _check_key(self, key: str) -> None:
        if key != self.user_key:
            try:
                other = node_id_for_key(natsjwt.decode_public_key(key, "user")[1])
            except natsjwt.JWTError:
                other = "an unknown node"
            raise FederationError(
                FedCode.AUTH_FAILED,
                f"FEDERATION_CREDENTIALS {self.path} was issued for {other} (key {key}), not for this "
                f"node ({self.identity.node_id}, key {self.user_key}): it belongs to another node's request",
            )

    def check(self) -> None:
        """Load and check the file now (start, and before each connection attempt)."""
        found = self._read()
        if isinstance(found, str):
            self._check_key(found)
            return
        if found.kind != "user":
            raise FederationError(FedCode.AUTH_FAILED, f"{self.path} holds a {found.kind or 'non-user'} JWT")
        self._check_key(found.subject)
        issued_for = found.claims.get("name")
        if issued_for and issued_for != self.identity.node_id:
            raise FederationError(
                FedCode.AUTH_FAILED,
                f"the user JWT in {self.path} lets this key publish only as {issued_for}, but the agent "
                f"runs as {self.identity.node_id} (FEDERATION_NODE_ID): unset FEDERATION_NODE_ID",
            )
        if found.expired():
            raise FederationError(FedCode.AUTH_FAILED, self._expired_text(found))
        if self.revoked is not None and found.claims.get("jti") == self.revoked:
            raise FederationError(FedCode.AUTH_FAILED, self._revoked_text())
        self.token = found
        self._stamp = self._file_stamp()

    def _expired_text(self, token: natsjwt.Token) -> str:
        return (
            f"the user JWT in {self.path} expired at {_when(token.expires)}: ask the seed operator to renew "
            f"it (seedctl enroll renew {self.identity.node_id}) and replace the file"
        )

    def _revoked_text(self) -> str:
        return (
            f"the seed operator revoked this node's user JWT ({self.path}): the seeds refuse it; "
            "only a new enrollment (new key, new request) admits the node again"
        )

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    # ---- nats-py ----

    def options(self) -> dict[str, Any]:
        """nats-py connect options (the client calls `check()` before each attempt)."""
        opts: dict[str, Any] = {"inbox_prefix": node_inbox_prefix(self.identity.node_id)}
        if self.kind == "nodekey":
            import nkeys

            opts["nkeys_seed_str"] = nkeys.encode_seed(self.identity.seed, nkeys.PREFIX_BYTE_USER).decode("ascii")
            return opts
        opts["user_jwt_cb"] = self._jwt_cb
        opts["signature_cb"] = self._sign
        return opts

    def _jwt_cb(self) -> bytearray:
        try:  # a renewed file is picked up at every (re)connect; a broken one keeps the last good token
            self.check()
        except (OSError, FederationError) as exc:
            log.warning("FEDERATION_CREDENTIALS: keeping the previous user JWT: %s", exc)
        assert self.token is not None
        return bytearray(self.token.text.encode("ascii"))

    def _sign(self, nonce: str) -> bytes:
        return base64.b64encode(self.identity.sign_raw(nonce.encode()))

    # ---- renewal and errors ----

    def renewed(self) -> natsjwt.Token | None:
        """A newer valid JWT for this node now in the file (the operator renewed it), else None."""
        if self.kind != "jwt" or self._file_stamp() == self._stamp:
            return None
        current = self.token
        try:
            found = self._read()
        except (OSError, FederationError):
            return None
        self._stamp = self._file_stamp()
        if (
            isinstance(found, str)
            or found.subject != self.user_key
            or found.expired()
            or (current is not None and found.text == current.text)
        ):
            return None
        return found

    def expiry_warning(self, now: float, days: int = 14) -> str | None:
        """A reminder while the JWT in use expires within `days` (renew before, and nothing stops)."""
        exp = self.token.expires if self.token is not None else None
        if exp is None or exp - now > days * 86400:
            return None
        return (
            f"the user JWT in {self.path} expires at {_when(exp)}: ask the seed operator to renew it "
            f"(seedctl enroll renew {self.identity.node_id}) and replace the file; the agent switches "
            "to the new one without a restart"
        )

    def closed_by_server(self, error_text: str) -> str | None:
        """The FED_002 message for a server-side close (revoked / expired), else None."""
        text = error_text.lower()
        if "revoked" in text:
            if self.token is not None:
                self.revoked = self.token.claims.get("jti")
            return self._revoked_text()
        if "expired" in text and self.token is not None:
            return self._expired_text(self.token)
        return None

    def explain(self, message: str) -> str:
        """Add the likely reason to a FED_002 refusal."""
        try:
            found = self._read()
        except (OSError, FederationError) as exc:
            return f"{message} ({exc})"
        if isinstance(found, str):
            return (
                f"{message}: the seeds do not list this node's key {self.user_key} (not approved yet, "
                "revoked, or the seeds not reloaded since `seedctl enroll approve`)"
            )
        if found.expired():
            return f"{message}: {self._expired_text(found)}"
        if self.revoked is not None and found.claims.get("jti") == self.revoked:
            return f"{message}: {self._revoked_text()}"
        return (
            f"{message}: the seeds refused the user JWT in {self.path} (valid until {_when(found.expires)}): "
            "revoked, or issued by another federation's operator"
        )
