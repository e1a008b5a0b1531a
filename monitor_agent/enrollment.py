"""Enrollment requests: how a node asks to join a federation without any secret travelling.

`monitor-agent enroll-request` writes one JSON object (PROTOCOL.md §1, "enrolling"):

    {"v": 1, "type": "tbfed-enroll-request", "nodeId": "node-a3f7c9d2e1",
     "userKey": "UA...", "region": "EU-WEST", "createdAt": "2026-12-02T02:00:00Z",
     "sig": "<base64url Ed25519 signature>"}

`userKey` is the node's Ed25519 identity key written as a NATS NKEY user key; `nodeId` is the
one derived from that key (PROTOCOL.md §2); `sig` is the node key's signature of the canonical
JSON (sorted keys, no spaces) of every other field. So a request proves possession of the key it
names, and the seed operator can check, offline, that the nodeId was not made up.
`verify_request` (used by `seedctl enroll approve`) refuses anything else with a
`RequestError` whose one-line message names the problem.
"""

from __future__ import annotations

import json
from datetime import datetime

from . import natsjwt
from .identity import Identity, b64url, b64url_decode, node_id_for_key
from .protocol import DERIVED_NODE_ID_RE, REGIONS
from .timestamps import rfc3339

REQUEST_TYPE = "tbfed-enroll-request"
MAX_REQUEST_BYTES = 4096
FIELDS = ("v", "type", "nodeId", "userKey", "region", "createdAt", "sig")


class RequestError(ValueError):
    """An enrollment request that must not be approved; the message says why (one line)."""


def _canonical(body: dict) -> bytes:
    return json.dumps(
        {k: v for k, v in body.items() if k != "sig"}, sort_keys=True, separators=(",", ":")
    ).encode()


def build_request(identity: Identity, region: str = "UNKNOWN", now: datetime | None = None) -> dict:
    """The signed request of this node (its nodeId must be the one derived from its key)."""
    if not identity.derived:
        raise RequestError(
            f"FEDERATION_NODE_ID {identity.node_id} is not derived from this node's key: enrollment binds "
            "the key to its derived nodeId (unset FEDERATION_NODE_ID)"
        )
    if region not in REGIONS:
        raise RequestError(f"region {region!r} is not one of {', '.join(REGIONS)}")
    at = rfc3339(now)
    body = {
        "v": 1,
        "type": REQUEST_TYPE,
        "nodeId": identity.node_id,
        "userKey": natsjwt.user_public_key(identity.public_raw),
        "region": region,
        "createdAt": at,
    }
    body["sig"] = identity.sign(_canonical(body))
    return body


def dumps(request: dict) -> str:
    return json.dumps(request, indent=2) + "\n"


def verify_request(text: str | bytes) -> dict:
    """Parse and check a request; returns it, or raises RequestError naming what is wrong."""
    if isinstance(text, bytes):
        if len(text) > MAX_REQUEST_BYTES:
            raise RequestError(f"request is larger than {MAX_REQUEST_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("request is not UTF-8 text") from None
    if len(text) > MAX_REQUEST_BYTES:
        raise RequestError(f"request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise RequestError(f"request is not JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(body, dict) or body.get("type") != REQUEST_TYPE:
        raise RequestError(f"not an enrollment request (type must be {REQUEST_TYPE!r})")
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise RequestError(f"request has unknown field(s) {', '.join(extra)}")
    missing = [f for f in FIELDS if f not in body]
    if missing:
        raise RequestError(f"request lacks field(s) {', '.join(missing)}")
    if body["v"] != 1:
        raise RequestError(f"request version {body['v']!r} is not 1")
    for name in ("nodeId", "userKey", "region", "createdAt", "sig"):
        if not isinstance(body[name], str):
            raise RequestError(f"request field {name} must be a string")
    if not DERIVED_NODE_ID_RE.match(body["nodeId"]):
        raise RequestError(f"nodeId {body['nodeId']!r} is not a derived nodeId (node- and 10 hex digits)")
    if body["region"] not in REGIONS:
        raise RequestError(f"region {body['region']!r} is not one of {', '.join(REGIONS)}")
    try:
        datetime.strptime(body["createdAt"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise RequestError(f"createdAt {body['createdAt']!r} is not an RFC 3339 UTC time") from None
    try:
        _kind, raw = natsjwt.decode_public_key(body["userKey"], "user")
    except natsjwt.JWTError as exc:
        raise RequestError(f"userKey is not an NKEY user public key ({exc})") from None
    derived = node_id_for_key(raw)
    if derived != body["nodeId"]:
        raise RequestError(f"nodeId {body['nodeId']} does not match its key (that key's nodeId is {derived})")
    from .identity import verify

    try:
        b64url_decode(body["sig"])
    except ValueError:
        raise RequestError("sig is not base64url") from None
    if not verify(b64url(raw), body["sig"], _canonical(body)):
        raise RequestError(
            f"signature does not verify: the request was altered or not signed by the key of {body['nodeId']}"
        )
    return body
