"""The receive pipeline: every rule of PROTOCOL.md §4, as one pure-ish function per message.

`ReceivePipeline.process(subject, data, headers, now) -> Accepted | Dropped`. No I/O of its
own: the client thread calls it for each NATS message and hands an `Accepted` to the store
(the look-ups it is given, `pinned_key`, `pinned_node` and `seen_task`, read the store's
memory or one indexed row). Order (cheap checks first): size, UTF-8 JSON, version (FED_009),
schema (msgspec + field rules), future timestamp, subject/nodeId agreement, own nodeId,
staleness and duplicates (a task older than the retention window, presence/stats older than
the freshness window or than the newest already seen from that node, a task event already
received), signature and key pinning (trust on first use both ways: a nodeId is bound to its
first key and a key to its first nodeId; a derived nodeId must match its key), per-key token
bucket (FED_004). Copies are dropped *before* the rate limit and before any state changes,
so a replayed message costs the real sender nothing (PROTOCOL.md §4). Drop reasons are the
keys of `monitor_agent.metrics.DROP_CODES`.
"""

from __future__ import annotations

import calendar
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ..identity import b64url_decode, node_id_for_key
from ..protocol import (
    DERIVED_NODE_ID_RE,
    EVENT_STATUS,
    HEADER_KEY,
    HEADER_SIG,
    KIND_PRESENCE,
    KIND_STATS,
    KIND_TASK,
    MAX_EXECUTION_TIME_MS,
    MAX_FUTURE_SKEW_S,
    MAX_MESSAGE_BYTES,
    MAX_PAST_AGE_S,
    MESSAGE_TYPES,
    NODE_ID_RE,
    PROTOCOL_VERSION,
    RATE_LIMITS,
    TASK_ID_RE,
    TASK_TYPE_RE,
    TIMESTAMP_RE,
    PresenceMessage,
    StatsMessage,
    TaskMessage,
    subject_root,
)
from .ratelimit import BucketTable

DEDUPE_WINDOW = 100_000
OFFLINE_BUCKET = "presence_offline"
KEY_CACHE = 20_000
# (nodeId, kind) -> newest presence/stats timestamp; beyond that many the freshness window rules.
NEWEST_CACHE = 50_000

_DECODERS = {kind: msgspec.json.Decoder(t) for kind, t in MESSAGE_TYPES.items()}
_ANY = msgspec.json.Decoder()


@dataclass(slots=True)
class Accepted:
    kind: str
    message: TaskMessage | StatsMessage | PresenceMessage
    key: str | None  # the sender's Tbf-Key (None only when signatures are not required)
    new_pin: bool  # first key seen for this nodeId
    ts: int  # the message's own timestamp, epoch seconds
    fresh: bool  # timestamp within MAX_PAST_AGE_S: the message says the sender is alive now


@dataclass(slots=True)
class Dropped:
    reason: str
    detail: str


def parse_timestamp(text: str) -> int:
    """Epoch seconds of `YYYY-MM-DDTHH:MM:SSZ` (ValueError otherwise)."""
    if not TIMESTAMP_RE.match(text):
        raise ValueError("timestamp must look like 2024-01-15T10:30:00Z")
    fields = (
        int(text[0:4]),
        int(text[5:7]),
        int(text[8:10]),
        int(text[11:13]),
        int(text[14:16]),
        int(text[17:19]),
    )
    if not (
        1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61
    ):
        raise ValueError("timestamp out of range")
    return calendar.timegm((*fields, 0, 0, 0))


def _rules(kind: str, m: Any) -> str | None:  # m: the struct of `kind` (MESSAGE_TYPES)
    """Field rules msgspec's types do not express; the problem or None."""
    if not NODE_ID_RE.match(m.nodeId):
        return "nodeId is not a valid node id"
    if kind == KIND_TASK:
        if not TASK_ID_RE.match(m.taskId):
            return "taskId must be global-task-<12 hex>"
        if m.chainId < 0:
            return "chainId must be >= 0"
        if m.blockNumber is not None and m.blockNumber < 0:
            return "blockNumber must be >= 0 or null"
        if not TASK_TYPE_RE.match(m.taskType):
            return "taskType must match ^[a-z0-9_-]{1,32}$"
        if EVENT_STATUS[m.event] != m.status:
            return "status disagrees with event"
        if m.executionTimeMs is not None and not 0 <= m.executionTimeMs <= MAX_EXECUTION_TIME_MS:
            return "executionTimeMs out of range"
    elif kind == KIND_STATS:
        for name in ("tasks24h", "tasksCompleted24h", "tasksFailed24h", "activeTasks"):
            if getattr(m, name) < 0:
                return f"{name} must be >= 0"
        if m.avgExecutionMs is not None and not 0 <= m.avgExecutionMs <= MAX_EXECUTION_TIME_MS:
            return "avgExecutionMs out of range"
    else:
        if m.tasksReported < 0:
            return "tasksReported must be >= 0"
        if not 1 <= len(m.version) <= 32:
            return "version must be 1-32 characters"
    return None


class ReceivePipeline:
    """Validates, authenticates and rate-limits incoming messages for one agent."""

    def __init__(
        self,
        own_node_id: str,
        *,
        prefix: str = "tbfed",
        require_signatures: bool = True,
        pinned_key: Callable[[str], str | None] = lambda node_id: None,
        pinned_node: Callable[[str], str | None] = lambda key: None,
        retention_s: float | None = None,
        seen_task: Callable[[str, str, str], bool] = lambda node_id, task_id, event: False,
        seen_floor: float = float("-inf"),
    ):
        """`pinned_key(nodeId)` / `pinned_node(key)`: the stored bindings (None if unbound).
        `retention_s`: task events older than this are stale (None: no limit).
        `seen_task(nodeId, taskId, event)`: whether the store already holds that event; asked
        only for timestamps at or below `seen_floor` (epoch s), the newest a message received
        before this pipeline existed can carry, so live traffic never waits on the store."""
        self.own_node_id = own_node_id
        self.root = subject_root(prefix) + "."
        self.require_signatures = require_signatures
        self.pinned_key = pinned_key
        self.pinned_node = pinned_node
        self.retention_s = retention_s
        self.seen_task = seen_task
        self.buckets = BucketTable({**RATE_LIMITS, OFFLINE_BUCKET: RATE_LIMITS[KIND_PRESENCE]})
        # Task events accepted lately -> their timestamp. An event that left this window has a
        # timestamp <= _floor, so older timestamps (only) are checked against the store.
        self._recent: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._floor = [seen_floor]  # a list: shared with the catch-up sibling (for_replay)
        # (nodeId, kind) -> (newest presence/stats timestamp, hashes of the payloads with it).
        self._newest: OrderedDict[tuple[str, str], tuple[int, set[int]]] = OrderedDict()
        # Verification uses libsodium (PyNaCl): about twice as fast here as OpenSSL's Ed25519
        # through `cryptography`, and the call runs without the GIL, beside the other threads.
        self._keys: OrderedDict[str, tuple[VerifyKey, str]] = OrderedDict()
        # Bindings made by this pipeline before the store has them (they bridge one writer batch).
        self._pins_here: dict[str, str] = {}  # nodeId -> key
        self._bound_here: dict[str, str] = {}  # key -> nodeId

    def process(
        self, subject: str, data: bytes, headers: dict[str, str] | None, now: float
    ) -> Accepted | Dropped:
        if len(data) > MAX_MESSAGE_BYTES:
            return Dropped("oversize", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
        if not subject.startswith(self.root):
            return Dropped("subject_mismatch", "subject outside the federation root")
        parts = subject[len(self.root) :].split(".")
        if len(parts) != 2 or parts[0] not in _DECODERS:
            return Dropped("subject_mismatch", "subject is not <root>.<task|stats|presence>.<nodeId>")
        kind, subject_node = parts
        try:
            data.decode("utf-8")
            message = _DECODERS[kind].decode(data)
        except UnicodeDecodeError:
            return Dropped("not_json", "payload is not UTF-8")
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: must come first
            return self._schema_or_version(data, str(exc))
        except msgspec.DecodeError:
            return Dropped("not_json", "payload is not JSON")
        if message.v != PROTOCOL_VERSION:
            return Dropped("version", f"v={message.v}")
        problem = _rules(kind, message)
        if problem is None and kind == KIND_TASK and message.event not in EVENT_STATUS:
            problem = "event does not match subject kind"
        if problem:
            return Dropped("schema", problem)
        try:
            ts = parse_timestamp(message.timestamp)
        except ValueError as exc:
            return Dropped("schema", str(exc))
        if ts > now + MAX_FUTURE_SKEW_S:
            return Dropped("future_timestamp", f"timestamp {int(ts - now)} s in the future")
        node_id = message.nodeId
        if node_id != subject_node:
            return Dropped("subject_mismatch", "subject nodeId differs from payload nodeId")
        if node_id == self.own_node_id:
            return Dropped("own", "our own nodeId")
        # Copies and stale messages go before the signature check and the rate limit: they change
        # nothing and cost the sender nothing, whoever replays them (nothing is recorded yet).
        fresh = ts >= now - MAX_PAST_AGE_S
        if kind == KIND_TASK:
            if self.retention_s is not None and ts < now - self.retention_s:
                return Dropped("stale", "task event older than the retention window")
            dedupe = (node_id, message.taskId, message.event)
            if dedupe in self._recent or (ts <= self._floor[0] and self.seen_task(*dedupe)):
                return Dropped("duplicate", "already received")
        else:
            if not fresh:
                return Dropped("stale", f"{kind} older than {MAX_PAST_AGE_S} s")
            newest = self._newest.get((node_id, kind))
            if newest is not None:
                if ts < newest[0]:
                    return Dropped("stale", f"older than the newest {kind} already seen from {node_id}")
                if ts == newest[0] and hash(data) in newest[1]:
                    return Dropped("duplicate", "already received")
        key, new_pin = None, False
        key_b64 = headers.get(HEADER_KEY) if headers else None
        sig_b64 = headers.get(HEADER_SIG) if headers else None
        if key_b64 is None or sig_b64 is None:
            if self.require_signatures:
                return Dropped("unsigned", "missing Tbf-Key/Tbf-Sig headers")
        else:
            verdict = self._verify(node_id, key_b64, sig_b64, data)
            if verdict is not None:
                return verdict
            key = key_b64
            pinned = self.pinned_key(node_id) or self._pins_here.get(node_id)
            if pinned is None:
                # A new nodeId: its key must not already speak for another one (one key, one node).
                bound = self.pinned_node(key_b64) or self._bound_here.get(key_b64)
                if bound is not None and bound != node_id:
                    return Dropped("key_reused", f"key already bound to nodeId {bound}")
                new_pin = True
            elif pinned != key_b64:
                return Dropped("key_mismatch", "nodeId is pinned to another key")
        # node_offline has its own bucket: a goodbye right after a heartbeat must not be lost.
        bucket_kind = kind if message.event != "node_offline" else OFFLINE_BUCKET
        if not self.buckets.allow(key or node_id, bucket_kind, now):
            return Dropped("rate_limited", f"{kind} rate of {node_id} exceeded")
        if new_pin and key_b64 is not None:  # (a new pin is a signed message's key)
            if len(self._pins_here) > 10_000:
                self._pins_here.clear()  # the store holds them by now; this only bridges a batch
                self._bound_here.clear()
            self._pins_here[node_id] = key_b64
            self._bound_here[key_b64] = node_id
        if kind == KIND_TASK:
            self._recent[dedupe] = ts
            if len(self._recent) > DEDUPE_WINDOW:
                _, old_ts = self._recent.popitem(last=False)
                if old_ts > self._floor[0]:
                    self._floor[0] = old_ts
        else:
            slot = (node_id, kind)
            newest = self._newest.get(slot)
            if newest is None or ts > newest[0]:
                self._newest[slot] = (ts, {hash(data)})
            else:
                newest[1].add(hash(data))
            self._newest.move_to_end(slot)
            if len(self._newest) > NEWEST_CACHE:
                self._newest.popitem(last=False)
        return Accepted(kind, message, key, new_pin, ts, fresh)

    def _schema_or_version(self, data: bytes, problem: str) -> Dropped:
        try:
            raw = _ANY.decode(data)
        except msgspec.DecodeError:
            return Dropped("not_json", "payload is not JSON")
        if isinstance(raw, dict) and "v" in raw and raw["v"] != PROTOCOL_VERSION:
            return Dropped("version", f"v={raw['v']!r}")
        return Dropped("schema", problem)

    def _verify(self, node_id: str, key_b64: str, sig_b64: str, data: bytes) -> Dropped | None:
        cached = self._keys.get(key_b64)
        try:
            if cached is None:
                raw = b64url_decode(key_b64)
                cached = (VerifyKey(raw), node_id_for_key(raw))
                self._keys[key_b64] = cached
                if len(self._keys) > KEY_CACHE:
                    self._keys.popitem(last=False)
            cached[0].verify(data, b64url_decode(sig_b64))
        except (ValueError, TypeError, BadSignatureError):
            return Dropped("bad_signature", "signature does not verify")
        if cached[1] != node_id and DERIVED_NODE_ID_RE.match(node_id):
            return Dropped("key_mismatch", "derived nodeId does not match its key")
        return None

    def for_replay(self) -> ReceivePipeline:
        """A sibling for history catch-up (issue 16): the same rules, key pins, key cache and
        dedupe memory, but its own token buckets, which the caller runs on the events' stream
        time instead of the wall clock: a sender is held to the rate it had when it published,
        and a 10-minute backlog arriving in seconds is not mistaken for a flood."""
        sibling = ReceivePipeline(
            self.own_node_id,
            prefix=self.root[:-1].rsplit(".v", 1)[0],
            require_signatures=self.require_signatures,
            pinned_key=self.pinned_key,
            pinned_node=self.pinned_node,
            retention_s=self.retention_s,
            seen_task=self.seen_task,
        )
        sibling.root = self.root
        sibling._recent = self._recent
        sibling._floor = self._floor
        sibling._newest = self._newest
        sibling._keys = self._keys
        sibling._pins_here = self._pins_here
        sibling._bound_here = self._bound_here
        return sibling

    def forget(self) -> None:
        """Drop dedupe memory and local bindings (after the operator clears federation data)."""
        self._recent.clear()
        self._newest.clear()
        self._pins_here.clear()
        self._bound_here.clear()
