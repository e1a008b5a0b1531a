"""The federation client: one asyncio loop in one thread owns the nats-py connection.

Thread-safe surface used by the agent (every method returns at once):
  start()                     DISABLED -> CONNECTING (connects to every seed URL, forever)
  stop(timeout)               sends node_offline if connected, closes, -> DISABLED
  publish_task(task)          anonymize (allow-list) -> privacy gate -> sign -> outbound buffer
  set_switches(broadcast_tasks=, broadcast_stats=, receive_enabled=)   applied live
  state, last_error, status_fields(), outbox_snapshot(), counters()

States: DISABLED -> CONNECTING -> CONNECTED <-> RECONNECTING, and ERROR (with a FED code)
while connection attempts fail; CONNECTED -> DEGRADED when the seed refuses a publish
(permissions violation: the credentials belong to another nodeId, or to an observer), with a
FED_010 message naming the NATS user, the refused subject and the fix. Every transition is logged and emitted as a
`federation_status` event; every error as `federation_error` {code, message, at}.
nats-py itself retries forever (`max_reconnect_attempts=-1`) with
FEDERATION_RECONNECT_TIMEOUT as `reconnect_time_wait`, failing over across the URL list.

Outbound: messages wait in a bounded buffer (newest kept, drops counted) and are sent by
one sender task only while connected, paced by token buckets matching the receivers'
limits. Messages are never handed to nats-py while disconnected, so the drop counters are
honest (nats-py's own pending buffer is not used as a silent second queue). Publishing is at
least once: a written message leaves the buffer only when a flush (PING/PONG) on the same
connection confirms the server read it; what a dying connection swallowed (a seed's lame-duck
close, a cut link) is sent again after the reconnect, and receivers drop the copies (§4).

Liveness: a seed from which nothing arrived for SILENCE_S gets a PING; unanswered within
PROBE_TIMEOUT_S, the next seed of this node's own shuffled list is tried, never the one just
lost first. A seed that went silent (link cut, host gone) is left 2-4 s later (PROTOCOL.md §1).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import ssl
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import __version__, anonymizer, privacy_gate
from ..config import Config, credentials_kind, redact_url
from ..errors import FederationError, StoreError
from ..identity import Identity
from ..loops import close_loop
from ..metrics import AgentMetrics
from ..model import LocalTask
from ..protocol import (
    CONNECTED_STATES,
    DERIVED_NODE_ID_RE,
    HEARTBEAT_INTERVAL_S,
    KIND_PRESENCE,
    KIND_STATS,
    KIND_TASK,
    MAX_FUTURE_SKEW_S,
    MAX_MESSAGE_BYTES,
    NODE_ID_RE,
    RATE_LIMITS,
    STATS_MAX_SILENCE_S,
    STATS_PRIVATE_BUCKET_S,
    FedCode,
    FederationState,
    PresenceMessage,
    TaskMessage,
    history_stream,
    history_subject,
    subject_for,
    subscribe_subject,
)
from ..store import FederationTaskRow, Store
from ..timestamps import rfc3339
from .errors_map import classify, describe
from .node_credentials import NodeCredentials
from .pipeline import Accepted, ReceivePipeline
from .ratelimit import TokenBucket

log = logging.getLogger("monitor_agent.federation")

_PUBLISH_REFUSED_RE = re.compile(r'permissions violation for publish to "?([^"\s]+)', re.IGNORECASE)
# Seeds grant `_INBOX` only with `history:` (PROTOCOL.md §1): nats-py's reply subscription for the
# catch-up's JetStream request is then refused, which says the same as a refused $JS publish.
_INBOX_REFUSED_RE = re.compile(r'permissions violation for subscription to "?_INBOX\.', re.IGNORECASE)

OUTBOUND_BUFFER = 10_000
OUTBOUND_SHARE = 0.9  # of the receivers' rate limits (PROTOCOL.md §4)
OUTBOX_SNAPSHOT = 500
ERROR_LOG_QUIET_S = 60.0
CONNECT_TIMEOUT_S = 5
# A silent seed (cut link, dead host): when nothing at all arrived for SILENCE_S, a PING goes out;
# no PONG within PROBE_TIMEOUT_S and the next seed is tried (2-4 s after the seed went silent, so
# failover stays under 5 s). Any message received counts as a sign of life, so a burst that takes
# the client seconds to read never looks like a dead seed (a PONG waits behind it in the stream).
# nats-py's own PING (NATS_PING_INTERVAL_S, NATS_MAX_OUTSTANDING_PINGS) stays as the backstop.
SILENCE_S = 1.0
PROBE_TIMEOUT_S = 2
NATS_PING_INTERVAL_S = 20
NATS_MAX_OUTSTANDING_PINGS = 3
# At least once: messages written since the last flush are confirmed by one PING/PONG round trip
# when the sender runs out of work, must wait for its rate bucket, or has written this many.
CONFIRM_BATCH = 100
YIELD_EVERY = 50  # received messages handled before the loop runs its other tasks
CONFIRM_TIMEOUT_S = 2
SWITCH_WAIT_S = 3  # set_switches waits this long for the seed to confirm a receive on/off
CREDENTIALS_POLL_S = 2.0
# Catch-up (issue 16): start a little before the newest stored event (clock skew between seeds,
# events published in the same second); dedupe and the store's UNIQUE key absorb the overlap.
CATCH_UP_OVERLAP_S = 5.0
CATCH_UP_IDLE_S = 3.0  # nothing at all from the ordered consumer for this long: ask if anything is pending
CATCH_UP_STALL_S = 8.0  # events still pending but none for this long (a seed died): read on from a new consumer
CATCH_UP_ATTEMPTS = 4  # consumers per catch-up before it stops with FED_012
CATCH_UP_PROGRESS_EVERY = 200  # a `federation_catchup` WebSocket event every N events read


def _catch_up_backoff(attempt: int) -> float:
    """Seconds before catch-up's next try (STREAM.INFO or a new consumer): 0.5, 1, 2, 4, 4 ..."""
    return min(4.0, 0.5 * 2**attempt)


class _Outgoing:
    __slots__ = ("kind", "subject", "payload", "headers", "queued_at")

    def __init__(self, kind: str, subject: str, payload: bytes, headers: dict[str, str]):
        self.kind = kind
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.queued_at = time.monotonic()


def load_credentials(path: Path | None) -> dict[str, Any]:
    """nats-py connect options for FEDERATION_CREDENTIALS: a .creds file, an NKEY seed, or `user:password`."""
    if path is None:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    kind = credentials_kind(text)
    if kind == "creds":
        return {"user_credentials": str(path)}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if kind == "nkey":
        # nats-py signs the server's nonce with the seed (no password crosses the wire, and the
        # seed costs the server no bcrypt). A bare seed file is re-read at every (re)connect.
        if text.strip() == lines[0]:
            return {"nkeys_seed": str(path)}
        return {"nkeys_seed_str": lines[0]}
    if kind == "password":
        user, _sep, password = lines[0].partition(":")
        return {"user": user, "password": password}
    raise FederationError(
        FedCode.AUTH_FAILED, f"{path}: expected one line user:password, a .creds file or an NKEY seed (SU...)"
    )


def _warn_if_readable(path: Path | None) -> None:
    """Credentials are secrets: say so when others can read them (never what they hold)."""
    if path is None:
        return
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning("FEDERATION_CREDENTIALS %s is readable by others (mode %o): chmod 600 it", path, mode)


def server_urls(config: Config) -> list[str]:
    """The seed URL list; with FEDERATION_TLS_ENABLED (or a client certificate) every URL is tls://."""
    urls = []
    for url in config.seed_urls:
        parts = urlsplit(url)
        if (config.tls_enabled or config.tls_cert is not None) and parts.scheme == "nats":
            parts = parts._replace(scheme="tls")
        urls.append(urlunsplit(parts))
    return urls


def _split_url_credentials(urls: list[str]) -> tuple[list[str], dict[str, str]]:
    """`user:password@` shared by every seed URL becomes the connection's user and password.

    nats-py applies URL credentials only to that URL; the seeds' other addresses it learns from
    the cluster (INFO connect_urls) would be dialled without them and refused (FED_002)."""
    parts = [urlsplit(u) for u in urls]
    auth = {(p.username, p.password) for p in parts}
    user, password = next(iter(auth), (None, None))
    if len(auth) != 1 or user is None or password is None:
        return urls, {}
    bare = [urlunsplit(p._replace(netloc=p.netloc.rpartition("@")[2])) for p in parts]
    return bare, {"user": unquote(user), "password": unquote(password)}


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The TLS context: with FEDERATION_TLS_ENABLED, a tls:// URL, or a client certificate (mutual TLS)."""
    if not (
        config.tls_enabled
        or config.tls_cert is not None
        or any(u.startswith("tls://") for u in config.seed_urls)
    ):
        return None
    ctx = ssl.create_default_context(cafile=str(config.tls_ca) if config.tls_ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.tls_cert is not None and config.tls_key is not None:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return ctx


class FederationClient:
    def __init__(
        self,
        config: Config,
        identity: Identity,
        store: Store,
        metrics: AgentMetrics,
        *,
        emit: Callable[[str, Any], None] = lambda t, d: None,
        local_stats: Callable[[], dict] | None = None,
        tasks_reported: Callable[[], int] = lambda: 0,
    ):
        self.config = config
        self.identity = identity
        self.store = store
        self.metrics = metrics
        self.emit = emit
        self.local_stats = local_stats or store.local_stats
        self.tasks_reported = tasks_reported
        self.broadcast_tasks = config.broadcast_tasks
        self.broadcast_stats = config.broadcast_stats
        self.receive_enabled = config.receive_enabled
        self._lock = threading.Lock()
        self.state = FederationState.DISABLED
        self.last_error: dict[str, Any] | None = None
        self._last_logged: dict[str, float] = {}
        self._snapshot: deque[dict[str, Any]] = deque(maxlen=OUTBOX_SNAPSHOT)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: nats.NATS | None = None
        self._stopping = False
        self._buffer: deque[_Outgoing] = deque()
        # Written to the connection but not yet confirmed by a flush; sent again if it dies.
        self._unconfirmed: list[_Outgoing] = []
        self._unconfirmed_conn = 0  # nc.stats["reconnects"] when the first of them was written
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._sub: Subscription | None = None
        self._since_yield = 0
        self.pipeline = ReceivePipeline(
            identity.node_id,
            prefix=config.subject_prefix,
            require_signatures=config.require_signatures,
            pinned_key=self._pinned_key,
            pinned_node=store.node_for_key,
            retention_s=config.task_retention_days * 86_400,
            seen_task=store.has_federation_task,
            # A task event stored before this start was received by then, so its timestamp is at
            # most MAX_FUTURE_SKEW_S past that: only such old timestamps are checked in the store.
            seen_floor=((store.last_federation_received_at() or -1e15) / 1000) + MAX_FUTURE_SKEW_S,
        )
        now = time.monotonic()
        # 10 % under the receivers' limits: network jitter can bunch paced messages up on the way,
        # and a sender at exactly the receivers' rate then loses a few to their buckets.
        self._out_buckets = {
            kind: TokenBucket(rate * OUTBOUND_SHARE, max(1.0, burst * OUTBOUND_SHARE), now)
            for kind, (rate, burst) in RATE_LIMITS.items()
        }
        self.counters_lock = threading.Lock()
        self.sent = 0
        self.blocked = 0
        self.outbound_dropped = 0
        self.received = 0
        self.accepted = 0
        self.drops: dict[str, int] = {}
        self._stats_dirty = True
        self._specific_at = -1e9
        self._tls = False
        self._node_creds: NodeCredentials | None = None
        self._server_closed: asyncio.Event | None = None
        self._catch_up_task: asyncio.Task | None = None
        self._js_refused: str | None = None  # the last $JS.* subject the seed refused us
        self.catch_up: dict[str, Any] = {
            "catchingUp": False,
            "historyOffered": None,  # None: not known yet; False: the seeds keep no history
            "code": None,  # FED_011 (no history on the seeds) or FED_012 (reading it refused)
            "read": 0,
            "accepted": 0,
            "dropped": 0,
            "pending": 0,
            "since": None,
            "lastCompletedAt": None,
            "maxAgeS": None,
        }

    # ---- thread-safe surface ----

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="federation", daemon=True
        )
        self._thread.start()
        ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Send node_offline (if connected and broadcasting), close, go DISABLED."""
        if not self.running or self._loop is None:
            self._set_state(FederationState.DISABLED)
            return
        self._stopping = True
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(timeout)
        except Exception as exc:  # a hung close must not hang the agent's shutdown
            log.warning("federation shutdown did not finish cleanly: %s", describe(exc))
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._nc = None
        self._set_state(FederationState.DISABLED)

    def publish_task(self, task: LocalTask) -> bool:
        """Queue the task event for `task`'s status if broadcasting tasks; False if nothing was queued."""
        self._stats_dirty = True  # local counters changed: node_stats goes out at the next interval
        if not self.broadcast_tasks or not self.running:
            return False
        message = anonymizer.task_message(
            task, node_id=self.identity.node_id, task_id=self.identity.task_id, privacy=self.config.privacy
        )
        if message is None:
            return False
        return self._enqueue(KIND_TASK, message)

    def stats_changed(self) -> None:
        """Local counters changed: node_stats goes out at the next interval (if broadcasting stats)."""
        self._stats_dirty = True

    def set_switches(
        self,
        *,
        broadcast_tasks: bool | None = None,
        broadcast_stats: bool | None = None,
        receive_enabled: bool | None = None,
    ) -> None:
        """Apply the live switches. Receive on/off (un)subscribes at once: when this returns, the
        seed has the change (a PING/PONG after it), unless it took over SWITCH_WAIT_S (disconnected:
        the subscription follows the switch on reconnect)."""
        was_broadcasting = self.broadcast_tasks or self.broadcast_stats
        if broadcast_tasks is not None:
            self.broadcast_tasks = broadcast_tasks
        if broadcast_stats is not None:
            self.broadcast_stats = broadcast_stats
            self._stats_dirty = True
        if receive_enabled is not None and receive_enabled != self.receive_enabled:
            self.receive_enabled = receive_enabled
            loop = self._loop
            if loop is not None and self.running and threading.current_thread() is not self._thread:
                done = asyncio.run_coroutine_threadsafe(self._sync_subscription(), loop)
                try:
                    done.result(SWITCH_WAIT_S)
                except Exception as exc:  # timed out or failed: the next connect syncs it again
                    log.debug("receive switch not confirmed by the seed yet: %s", describe(exc))
        now_broadcasting = self.broadcast_tasks or self.broadcast_stats
        if now_broadcasting != was_broadcasting and self.state in CONNECTED_STATES:
            self._send_presence("node_online" if now_broadcasting else "node_offline", force=True)
        if not now_broadcasting and self.state == FederationState.DEGRADED:
            # Nothing is published any more, so nothing can be refused: receiving works.
            self._set_state(FederationState.CONNECTED, reason="broadcasting off")

    def outbox_snapshot(self) -> list[dict[str, Any]]:
        """The last 500 messages sent, oldest first, exactly as sent."""
        return list(self._snapshot)

    def status_fields(self) -> dict[str, Any]:
        with self._lock:  # state and lastError from the same moment
            state, last_error = self.state, self.last_error
        return {
            "state": state.value,
            "connected": state in CONNECTED_STATES,
            "lastError": last_error,
            "catchUp": dict(self.catch_up),
        }

    def counters(self) -> dict[str, Any]:
        with self.counters_lock:
            return {
                "sent": self.sent,
                "blocked": self.blocked,
                "outboundDropped": self.outbound_dropped,
                "buffered": len(self._buffer) + len(self._unconfirmed),
                "received": self.received,
                "accepted": self.accepted,
                "drops": dict(self.drops),
            }

    def connected_url(self) -> str | None:
        nc = self._nc
        try:
            uri = nc.connected_url if nc is not None else None
        except Exception:
            return None
        if uri is None:
            return None
        return f"{uri.scheme}://{uri.hostname}:{uri.port}"

    # ---- errors and state ----

    def _set_state(self, state: FederationState, *, reason: str | None = None) -> None:
        with self._lock:
            if self.state == state:
                return
            old, self.state = self.state, state
        self._announce_state(old, state, reason)

    def _announce_state(self, old: FederationState, state: FederationState, reason: str | None) -> None:
        self.metrics.set_state(state)
        log.info("federation %s -> %s%s", old.value, state.value, f" ({reason})" if reason else "")
        self.emit(
            "federation_status",
            {
                "enabled": state != FederationState.DISABLED,
                "connected": state in CONNECTED_STATES,
                "state": state.value,
                "previous": old.value,
                "nodeId": self.identity.node_id,
                "lastError": self.last_error,
            },
        )

    def record_error(
        self,
        code: FedCode,
        message: str,
        *,
        then: FederationState | None = None,
        only_from: tuple[FederationState, ...] = (),
        reason: str | None = None,
    ) -> None:
        """Count, remember as lastError, emit; log once per burst of the same code.

        `then`: the state entered in the same step (only from a state in `only_from`, if given),
        so no status read sees this error beside the state it ends (FED_010 beside a green
        CONNECTED, an auth failure beside CONNECTING)."""
        error = {"code": code.value, "message": message, "at": rfc3339()}
        old = None
        with self._lock:
            self.last_error = error
            if then is not None and self.state != then and (not only_from or self.state in only_from):
                old, self.state = self.state, then
        if old is not None and then is not None:
            self._announce_state(old, then, reason or code.value)
        self.metrics.errors.labels(code=code.value).inc()
        now = time.monotonic()
        if now - self._last_logged.get(code.value, -1e9) > ERROR_LOG_QUIET_S:
            self._last_logged[code.value] = now
            log.error("%s: %s", code.value, message)
        self.emit("federation_error", dict(error))

    # ---- outbound (any thread) ----

    def _enqueue(self, kind: str, message: dict[str, Any]) -> bool:
        finding = privacy_gate.check(message)
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if finding is None:
            kind_found = privacy_gate.check_payload(payload)
            if kind_found:
                finding = privacy_gate.Finding("<payload>", kind_found)
        if finding is not None:
            with self.counters_lock:
                self.blocked += 1
            self.metrics.outbound_dropped.labels(reason="privacy_gate").inc()
            # The finding names the field and the kind of data, never the value itself.
            self.record_error(
                FedCode.VALIDATION_FAILED, f"outgoing {message.get('event')} blocked: {finding}"
            )
            return False
        if len(payload) > MAX_MESSAGE_BYTES:
            self.metrics.outbound_dropped.labels(reason="oversize").inc()
            self.record_error(
                FedCode.VALIDATION_FAILED, f"outgoing {message.get('event')} exceeds 1024 bytes"
            )
            return False
        item = _Outgoing(
            kind,
            subject_for(kind, self.identity.node_id, self.config.subject_prefix),
            payload,
            self.identity.headers(payload),
        )
        return self._call_soon(self._buffer_put, item)

    def _call_soon(self, fn: Callable, *args: Any) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # loop closed between the check and the call
            return False

    # ---- everything below runs on the federation loop ----

    def _buffer_put(self, item: _Outgoing) -> None:
        if len(self._buffer) >= OUTBOUND_BUFFER:
            self._buffer.popleft()  # newest kept: the oldest waiting message goes
            with self.counters_lock:
                self.outbound_dropped += 1
            reason = "buffer_full" if self.state in CONNECTED_STATES else "disconnected_buffer_full"
            self.metrics.outbound_dropped.labels(reason=reason).inc()
            if self.state in CONNECTED_STATES:
                self.record_error(
                    FedCode.RATE_LIMITED, "outbound rate limit: buffer full, oldest message dropped"
                )
        self._buffer.append(item)
        self.metrics.outbound_buffered.set(len(self._buffer))
        if self._wake is not None:
            self._wake.set()

    def _send_presence(self, event: str, *, force: bool = False) -> None:
        if not force and not (self.broadcast_tasks or self.broadcast_stats):
            return
        message = anonymizer.presence_message(
            event,
            node_id=self.identity.node_id,
            region=self.config.region,
            version=__version__,
            tasks_reported=self.tasks_reported(),
        )
        self._enqueue(KIND_PRESENCE, message)

    def _thread_main(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(ready))
        except Exception:
            log.exception("federation loop crashed")
            self.record_error(
                FedCode.SEED_UNAVAILABLE, "federation loop crashed; see the log", then=FederationState.ERROR
            )
        finally:
            close_loop(loop)  # what nats-py left behind is awaited here, not garbage-collected later

    async def _main(self, ready: threading.Event) -> None:
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._server_closed = asyncio.Event()
        ready.set()
        self._set_state(FederationState.CONNECTING)
        try:
            options = self._connect_options()
        except ssl.SSLError as exc:  # the client certificate or key does not load
            code = FedCode.TLS_ERROR
            self.record_error(
                code,
                f"cannot load FEDERATION_TLS_CERT/FEDERATION_TLS_KEY: {describe(exc)}",
                then=FederationState.ERROR,
            )
            await self._stop_event.wait()
            return
        except (OSError, FederationError) as exc:
            code = exc.code if isinstance(exc, FederationError) else FedCode.AUTH_FAILED
            self.record_error(code, f"cannot read FEDERATION_CREDENTIALS: {exc}", then=FederationState.ERROR)
            await self._stop_event.wait()
            return
        retry_s = self.config.reconnect_timeout_ms / 1000
        while True:
            nc = await self._connect_until_ok(options, retry_s)
            if nc is None:
                return  # stopped
            await self._on_connected(first=True)
            tasks = [
                asyncio.create_task(self._sender(nc)),
                asyncio.create_task(self._watch_seed(nc)),
                asyncio.create_task(self._heartbeat()),
                asyncio.create_task(self._stats_loop()),
            ]
            if self._node_creds is not None and self._node_creds.kind == "jwt":
                tasks.append(asyncio.create_task(self._watch_credentials(nc)))
            stop_wait = asyncio.create_task(self._stop_event.wait())
            closed_wait = asyncio.create_task(self._server_closed.wait())
            await asyncio.wait({stop_wait, closed_wait}, return_when=asyncio.FIRST_COMPLETED)
            if self._catch_up_task is not None:
                tasks.append(self._catch_up_task)
            for t in (*tasks, stop_wait, closed_wait):
                t.cancel()
            await asyncio.gather(*tasks, stop_wait, closed_wait, return_exceptions=True)
            await self._close(nc)
            if self._stop_event.is_set():
                return
            # The seed closed the connection for good (nats-py does not retry after a revoked or
            # expired user JWT): start over, re-reading FEDERATION_CREDENTIALS at every attempt.
            self._server_closed.clear()
            self._sub = None
            try:
                await asyncio.wait_for(self._stop_event.wait(), timeout=retry_s)
                return
            except TimeoutError:
                pass

    async def _connect_until_ok(self, options: dict[str, Any], retry_s: float) -> nats.NATS | None:
        """Connect, retrying forever (the seed may be down when the node boots); None once stopped.

        ERROR with the FED code while it fails, one attempt every FEDERATION_RECONNECT_TIMEOUT.
        """
        assert self._stop_event is not None
        while True:
            nc = nats.NATS()
            self._nc = nc
            exc: BaseException | None = None
            if self._node_creds is not None:
                try:
                    self._node_creds.check()  # expired / revoked / another node's: say so, do not dial
                except (OSError, FederationError) as err:
                    exc = err
            if exc is None:
                self._set_state(FederationState.CONNECTING)
                connect = asyncio.create_task(nc.connect(**options))
                stop_wait = asyncio.create_task(self._stop_event.wait())
                await asyncio.wait({connect, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not connect.done():
                    connect.cancel()
                    await asyncio.gather(connect, return_exceptions=True)
                    await self._close(nc)
                    return None
                stop_wait.cancel()
                exc = connect.exception()
                if exc is None and nc.is_connected:
                    return nc
            if exc is None:
                # nats-py can return from connect() with its handshake unfinished (a server INFO or
                # PING read where it expected PONG): nothing would ever be flushed. Start again.
                code, message = FedCode.NETWORK_TIMEOUT, "the seed did not complete the NATS handshake"
            elif isinstance(exc, FederationError):
                code, message = exc.code, exc.message
            elif isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                code, message = FedCode.AUTH_FAILED, f"cannot read FEDERATION_CREDENTIALS: {exc}"
            else:
                code, message = classify(exc), describe(exc)
                if code == FedCode.AUTH_FAILED:
                    message = self._auth_failed_message(message)
            self.record_error(code, message, then=FederationState.ERROR)
            await self._close(nc)
            try:
                await asyncio.wait_for(self._stop_event.wait(), timeout=retry_s)
                return None  # stopped while waiting
            except TimeoutError:
                pass

    async def _watch_seed(self, nc: nats.NATS) -> None:
        """Leave a silent seed within seconds: a cut link or a vanished host sends no FIN, and
        nats-py's own PING would notice only after a minute."""
        seen, heard = nc.stats["in_msgs"], time.monotonic()
        while True:
            await asyncio.sleep(SILENCE_S / 4)
            now = time.monotonic()
            if nc.stats["in_msgs"] != seen or not nc.is_connected or self.state not in CONNECTED_STATES:
                seen, heard = nc.stats["in_msgs"], now
                continue
            if now - heard < SILENCE_S:
                continue
            conn = nc.stats["reconnects"]
            try:
                await nc.flush(timeout=PROBE_TIMEOUT_S)
            except Exception:
                if nc.is_connected and nc.stats["reconnects"] == conn:  # the same connection, still silent
                    log.info(
                        "seed %s silent for %.0f s (no PONG): trying the next seed",
                        self.connected_url(),
                        SILENCE_S + PROBE_TIMEOUT_S,
                    )
                    await nc.force_reconnect()
            seen, heard = nc.stats["in_msgs"], time.monotonic()

    async def _watch_credentials(self, nc: nats.NATS) -> None:
        """Renewal without downtime: present a renewed user JWT as soon as its file is in place."""
        assert self._node_creds is not None
        warned_at = -1e9
        while True:
            await asyncio.sleep(CREDENTIALS_POLL_S)
            reminder = self._node_creds.expiry_warning(time.time())
            if reminder is not None and time.monotonic() - warned_at > 86400:
                warned_at = time.monotonic()
                log.warning("%s", reminder)
            token = self._node_creds.renewed()
            if token is not None and nc.is_connected:
                log.info(
                    "FEDERATION_CREDENTIALS renewed (valid until %s): reconnecting with it", token.expires
                )
                await nc.force_reconnect()  # the reconnect reads the new JWT; the sender waits meanwhile

    def _connect_options(self) -> dict[str, Any]:
        reconnect_s = self.config.reconnect_timeout_ms / 1000
        # This node's own order of the seeds, shuffled once: connections spread over the seeds,
        # and nats-py's round robin then tries the seed just lost last (a silent seed costs a full
        # connect timeout; nats-py's own shuffle at each reconnect could pick it first).
        servers = server_urls(self.config)
        random.shuffle(servers)
        servers, url_auth = _split_url_credentials(servers)
        options: dict[str, Any] = {
            "servers": servers,
            "dont_randomize": True,
            "name": "truebit-monitor",  # generic: the connection name is visible in seed monitoring
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": reconnect_s,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "ping_interval": NATS_PING_INTERVAL_S,
            "max_outstanding_pings": NATS_MAX_OUTSTANDING_PINGS,
            "no_echo": True,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }
        ctx = tls_context(self.config)
        self._tls = ctx is not None
        if ctx is not None:
            options["tls"] = ctx
        if url_auth:
            options.update(url_auth)
        path = self.config.credentials_file
        kind = credentials_kind(Path(path).read_text(encoding="utf-8")) if path is not None else None
        if path is not None and kind in ("jwt", "nodekey"):  # from `seedctl enroll approve`: public only
            self._node_creds = NodeCredentials(path, kind, self.identity)
            options.update(self._node_creds.options())
        else:
            _warn_if_readable(path)
            options.update(load_credentials(path))
        return options

    async def _on_connected(self, *, first: bool) -> None:
        # Subscribe (and flush, so the server has it) before announcing CONNECTED.
        await self._sync_subscription()
        if self.last_error is not None and self.last_error["code"] in (
            "FED_001",
            "FED_002",
            "FED_007",
            "FED_008",
        ):
            # The connection works again: a connection error is history, not the current state.
            self.last_error = None
        self._set_state(FederationState.CONNECTED, reason=self.connected_url())
        self._send_presence("node_online")
        self._stats_dirty = True
        if self._wake is not None:
            self._wake.set()
        self._start_catch_up()

    async def _sync_subscription(self) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return
        if self.receive_enabled and self._sub is None:
            try:
                self._sub = await nc.subscribe(
                    subscribe_subject(self.config.subject_prefix),
                    cb=self._on_message,
                    pending_msgs_limit=200_000,
                    pending_bytes_limit=256 * 1024 * 1024,
                )
                await nc.flush(timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:
                self._sub = None
                self.record_error(
                    classify(exc) if "permission" in str(exc).lower() else FedCode.SUBSCRIPTION_FAILED,
                    f"subscribe failed: {describe(exc)}",
                )
        elif not self.receive_enabled and self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
                await nc.flush(timeout=CONNECT_TIMEOUT_S)  # the seed has dropped it: nothing more comes
            except Exception as exc:
                log.warning("unsubscribe failed: %s", describe(exc))

    async def _on_error(self, exc: Exception) -> None:
        if self._stopping:
            return
        code = classify(exc)
        if code == FedCode.RATE_LIMITED:  # our own subscription fell behind: messages were lost
            self.metrics.drop("slow_consumer")
            with self.counters_lock:
                self.drops["slow_consumer"] = self.drops.get("slow_consumer", 0) + 1
            return
        last = self.last_error
        if (
            code in (FedCode.SEED_UNAVAILABLE, FedCode.NETWORK_TIMEOUT)
            and last is not None
            and last["code"] in (FedCode.AUTH_FAILED.value, FedCode.TLS_ERROR.value)
            and time.monotonic() - self._specific_at < self._attempt_window()
            and self.state not in CONNECTED_STATES
        ):
            # The server hangs up after rejecting us: that reset is a consequence, the rejection the cause.
            self.metrics.errors.labels(code=code.value).inc()
            return
        message = describe(exc)
        if (
            code == FedCode.SEED_UNAVAILABLE
            and self._tls
            and self.state in (FederationState.CONNECTING, FederationState.ERROR)
            and isinstance(exc, BrokenPipeError | ConnectionResetError)
        ):
            # With TLS 1.3 a seed rejecting our certificate (or its absence: mutual TLS) hangs up just
            # after the handshake, so the refusal often reaches us as a broken pipe, not as a TLS alert.
            code = FedCode.TLS_ERROR
            message += (
                " (the seed hung up during the TLS handshake: client certificate missing or not trusted?)"
            )
        if code in (FedCode.AUTH_FAILED, FedCode.TLS_ERROR):
            self._specific_at = time.monotonic()
        if code == FedCode.AUTH_FAILED:
            message = self._auth_failed_message(message)
        if _INBOX_REFUSED_RE.search(str(exc)) is not None:
            self._js_refused = self._js_refused or "_INBOX"
            self.metrics.errors.labels(code=code.value).inc()
            return
        refused = _PUBLISH_REFUSED_RE.search(str(exc))
        if refused is not None and refused.group(1).upper().startswith("$JS."):
            # A JetStream request of the catch-up: a seed without `history:` grants none. The catch-up
            # reports it (FED_011/FED_012); our federation publishes are not affected.
            self._js_refused = refused.group(1)
            self.metrics.errors.labels(code=code.value).inc()
            return
        if refused is not None:
            self.record_error(
                code,
                self._publish_refused_message(refused.group(1)),
                then=FederationState.DEGRADED,
                only_from=(FederationState.CONNECTED,),
                reason=f"{code.value}: publish refused",
            )
            return
        self.record_error(
            code, message, then=FederationState.ERROR, only_from=(FederationState.CONNECTING, FederationState.ERROR)
        )
        if code == FedCode.SUBSCRIPTION_FAILED and "subscription" in str(exc).lower():
            self._sub = None

    def _who(self) -> tuple[str, str | None]:
        """(how to name our NATS user in a message, its user name if known). Never a secret."""
        path = self.config.credentials_file
        if path is None:
            for url in self.config.seed_urls:
                user = urlsplit(url).username
                if user:
                    return f"NATS user {user!r} (from FEDERATION_SEED_URL {redact_url(url)})", user
            return "no NATS user (no FEDERATION_CREDENTIALS)", None
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            return f"the NATS user of FEDERATION_CREDENTIALS={path}", None
        kind = credentials_kind(text)
        first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
        if kind == "password":
            user = first.partition(":")[0]
            return f"NATS user {user!r} (FEDERATION_CREDENTIALS={path})", user
        if kind == "nkey":
            try:
                import nkeys

                public = nkeys.from_seed(bytearray(first.encode())).public_key.decode()
            except Exception:
                public = "?"
            return f"the nkey user {public} (FEDERATION_CREDENTIALS={path})", None
        return f"the NATS user of FEDERATION_CREDENTIALS={path}", None

    def _auth_failed_message(self, detail: str) -> str:
        if self._node_creds is not None:  # our own key: expired, revoked, or another node's JWT
            return self._node_creds.explain(detail)
        who, _user = self._who()
        return (
            f"{detail}: the seed rejected {who}. The user was removed or its secret rotated: ask the seed "
            "operator for current credentials (seedctl users credentials NAME --out DIR) and restart"
        )

    def _publish_refused_message(self, subject: str) -> str:
        who, user = self._who()
        own = self.identity.node_id
        if user and DERIVED_NODE_ID_RE.match(user) and user != own:
            fix = (
                f"these credentials are for node {user}, but this node's key derives {own}: ask the seed "
                f"operator for an enrolled user {own} (seedctl users add {own})"
            )
        elif user and NODE_ID_RE.match(user) and user != own:
            fix = (
                f"if {user!r} is an enrolled user, it may publish only as its own name: set "
                f"FEDERATION_NODE_ID={user} and restart (the NAME.env from seedctl users credentials sets "
                "it); if it is an observer (read-only), set FEDERATION_BROADCAST_TASKS=false and "
                "FEDERATION_BROADCAST_STATS=false"
            )
        else:
            fix = (
                "an enrolled user may publish only as its own name: set FEDERATION_NODE_ID to that name "
                "(seedctl users list on the seed shows it) and restart; an observer cannot publish: set "
                "FEDERATION_BROADCAST_TASKS=false and FEDERATION_BROADCAST_STATS=false"
            )
        return f"the seed refused publish to {subject} for {who} as node {own}: {fix}"

    def _attempt_window(self) -> float:
        """Seconds one round of connection attempts can take (wait + timeout, with slack)."""
        return self.config.reconnect_timeout_ms / 1000 * 2 + CONNECT_TIMEOUT_S + 1

    async def _on_disconnected(self) -> None:
        if not self._stopping and self.state in CONNECTED_STATES:
            self._set_state(FederationState.RECONNECTING, reason="connection lost")

    async def _on_reconnected(self) -> None:
        if self._stopping:
            return
        # nats-py re-sends existing subscriptions itself on reconnect.
        await self._on_connected(first=False)

    async def _on_closed(self) -> None:
        if self._stopping:
            return
        if self.state in (*CONNECTED_STATES, FederationState.RECONNECTING):
            # Closed by the seed for good (nats-py does not reconnect after such an -ERR).
            nc = self._nc
            text = str(nc.last_error or "") if nc is not None else ""
            why = self._node_creds.closed_by_server(text) if self._node_creds is not None else None
            error = None
            if why is not None:
                error = (FedCode.AUTH_FAILED, why)
            elif nc is not None and nc.last_error is not None and text:
                error = (classify(nc.last_error), f"the seed closed the connection: {text}")
            if error is not None:
                self.record_error(*error, then=FederationState.ERROR, reason="connection closed")
            if self._server_closed is not None:
                self._server_closed.set()
        self._set_state(FederationState.ERROR, reason="connection closed")

    async def _sender(self, nc: nats.NATS) -> None:
        assert self._wake is not None
        try:
            while True:
                ready = bool(self._buffer) and nc.is_connected and self.state in CONNECTED_STATES
                if self._unconfirmed and (not ready or len(self._unconfirmed) >= CONFIRM_BATCH):
                    await self._confirm(nc)
                    continue
                if not ready:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self._buffer[0]
                bucket = self._out_buckets[item.kind]
                delay = bucket.wait_time(time.monotonic())
                if delay > 0:
                    if self._unconfirmed:
                        await self._confirm(nc)  # confirm while waiting for the bucket anyway
                    else:
                        await asyncio.sleep(delay)
                    continue
                conn = nc.stats["reconnects"]
                try:
                    await nc.publish(item.subject, item.payload, headers=item.headers)
                except Exception as exc:  # disconnected in between: keep it and wait for the connection
                    log.debug("publish deferred: %s", describe(exc))
                    self._wake.clear()
                    await asyncio.sleep(0.05)
                    continue
                bucket.take(time.monotonic())
                self._buffer.popleft()
                if not self._unconfirmed:
                    self._unconfirmed_conn = conn
                self._unconfirmed.append(item)
        finally:
            self._requeue_unconfirmed()

    async def _confirm(self, nc: nats.NATS) -> None:
        """One PING/PONG round trip on the connection the unconfirmed messages were written to:
        the server has read everything written before its PONG, so those messages leave the
        outbound buffer now. If that connection died meanwhile (its PONG never comes; nats-py
        answers a flush during a reconnect without a round trip, hence the connection check),
        they go back to the front of the buffer and are sent again once connected."""
        conn = self._unconfirmed_conn
        confirmed = False
        if nc.is_connected and nc.stats["reconnects"] == conn:
            try:
                await nc.flush(timeout=CONFIRM_TIMEOUT_S)
                confirmed = nc.is_connected and nc.stats["reconnects"] == conn
            except Exception as exc:
                log.debug("flush did not confirm %d messages: %s", len(self._unconfirmed), describe(exc))
        if not confirmed:
            self._requeue_unconfirmed()
            return
        done, self._unconfirmed = self._unconfirmed, []
        self.metrics.outbound_buffered.set(len(self._buffer))
        for item in done:
            self._sent(item)

    def _requeue_unconfirmed(self) -> None:
        if self._unconfirmed:
            log.debug("%d messages not confirmed by the seed: sending them again", len(self._unconfirmed))
            self._buffer.extendleft(reversed(self._unconfirmed))
            self._unconfirmed = []
            self.metrics.outbound_buffered.set(len(self._buffer))

    def _sent(self, item: _Outgoing) -> None:
        text = item.payload.decode("utf-8")
        self._snapshot.append(
            {
                "subject": item.subject,
                "payload": text,
                "headers": dict(item.headers),
                "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        )
        with self.counters_lock:
            self.sent += 1
        self.metrics.published.labels(kind=item.kind).inc()
        if self.config.debug:
            log.info("federation OUT %s %s headers=%s", item.subject, text, json.dumps(item.headers))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            if self.state in CONNECTED_STATES:
                self._send_presence("node_heartbeat")

    async def _stats_loop(self) -> None:
        interval = self.config.broadcast_interval_ms / 1000
        last_sent: dict | None = None
        last_at = 0.0
        # The first private send waits for the next bucket boundary too: a send at connect time
        # followed by one at the boundary would bound a task to a window as short as seconds.
        last_bucket = int(time.time() // STATS_PRIVATE_BUCKET_S)
        while True:
            await asyncio.sleep(interval)
            if not self.broadcast_stats or self.state not in CONNECTED_STATES:
                continue
            now = time.monotonic()
            if self.broadcast_tasks:
                if not self._stats_dirty and now - last_at < STATS_MAX_SILENCE_S:
                    continue
            else:
                # Task events are off: a stats message at each change would time every task
                # (tasks24h ticks as one completes). Send once per wall-clock bucket instead.
                bucket = int(time.time() // STATS_PRIVATE_BUCKET_S)
                if bucket == last_bucket:
                    continue
                last_bucket = bucket
            self._stats_dirty = False
            try:
                stats = await asyncio.to_thread(self.local_stats)
            except StoreError as exc:
                self.record_error(exc.code, exc.message)
                continue
            message = anonymizer.stats_message(
                stats, node_id=self.identity.node_id, privacy=self.config.privacy
            )
            body = {k: v for k, v in message.items() if k != "timestamp"}
            if self.broadcast_tasks and body == last_sent and now - last_at < STATS_MAX_SILENCE_S:
                continue
            if self._enqueue(KIND_STATS, message):
                last_sent, last_at = body, now

    # ---- receive ----

    async def _on_message(self, msg: Msg) -> None:
        now = time.time()
        self._receive(self.pipeline, msg.subject, msg.data, msg.headers, now, int(now * 1000))
        # nats-py runs this callback for queued messages back to back without yielding: under a
        # flood the read loop (PONGs, the seed's PINGs) and the sender would wait for seconds.
        self._since_yield += 1
        if self._since_yield >= YIELD_EVERY:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _receive(
        self,
        pipeline: ReceivePipeline,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
        now: float,
        at_ms: int,
    ) -> bool:
        """The one receive path, live and catch-up alike: pipeline rules, then the store.
        `now` is the clock the rules run on (wall clock live, stream time on catch-up)."""
        with self.counters_lock:
            self.received += 1
        if not self.receive_enabled:  # in flight while unsubscribing
            return False
        verdict = pipeline.process(subject, data, headers, now)
        with self.counters_lock:
            if not isinstance(verdict, Accepted):
                self.drops[verdict.reason] = self.drops.get(verdict.reason, 0) + 1
            else:
                self.accepted += 1
        if not isinstance(verdict, Accepted):
            self.metrics.drop(verdict.reason)
            if verdict.reason not in ("own", "duplicate"):
                log.debug("dropped message on %s: %s (%s)", subject, verdict.reason, verdict.detail)
            return False
        self.metrics.received.labels(kind=verdict.kind).inc()
        m = verdict.message
        pin = verdict.key if verdict.new_pin else None
        if isinstance(m, TaskMessage):
            # An old task (a sender's backlog, or a replay) says nothing about the sender being up
            # now: the peer's lastSeen moves only as far as the message's own time.
            seen_ms = at_ms if verdict.fresh else min(at_ms, verdict.ts * 1000)
            self.store.enqueue_peer(m.nodeId, seen_ms, pinned_key=pin)
            if not self.store.enqueue_federation_task(
                FederationTaskRow(
                    m.nodeId,
                    m.taskId,
                    m.event,
                    m.chainId,
                    m.blockNumber,
                    m.taskType,
                    m.status,
                    m.executionTimeMs,
                    m.timestamp,
                    at_ms,
                )
            ):
                self.metrics.drop("store_backlog")
        elif isinstance(m, PresenceMessage):
            self.store.enqueue_peer(
                m.nodeId,
                at_ms,
                event=m.event,
                region=m.region,
                version=m.version,
                tasks_reported=m.tasksReported,
                pinned_key=pin,
            )
        else:  # a StatsMessage
            stats = {
                "tasks24h": m.tasks24h,
                "tasksCompleted24h": m.tasksCompleted24h,
                "tasksFailed24h": m.tasksFailed24h,
                "activeTasks": m.activeTasks,
                "avgExecutionMs": m.avgExecutionMs,
            }
            self.store.enqueue_peer(m.nodeId, at_ms, stats=stats, pinned_key=pin)
        return True

    # ---- catch-up from the seeds' task history (issue 16, PROTOCOL.md "Task history") ----

    def _start_catch_up(self) -> None:
        if not self.config.catch_up or not self.receive_enabled or self._nc is None:
            return
        if self._catch_up_task is not None and not self._catch_up_task.done():
            self._catch_up_task.cancel()  # a new connection: start over from what is stored now
        self._catch_up_task = asyncio.get_running_loop().create_task(self._catch_up(self._nc))

    def _catch_up_event(self) -> None:
        self.emit("federation_catchup", dict(self.catch_up))

    async def _catch_up(self, nc: nats.NATS) -> None:
        """Read what this node missed from the history stream, through the receive pipeline."""
        from nats.js.api import ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError, ServiceUnavailableError

        stream = history_stream(self.config.subject_prefix)
        js = nc.jetstream(timeout=CONNECT_TIMEOUT_S)
        self._js_refused = None
        try:
            for attempt in range(CATCH_UP_ATTEMPTS):
                try:
                    info = await js.stream_info(stream)
                    break
                except TimeoutError:
                    if self._js_refused is not None:
                        raise NotFoundError from None  # not granted: this seed offers us no history
                    if attempt == CATCH_UP_ATTEMPTS - 1:
                        raise
                    # No answer yet: right after a seed died the stream may be electing a leader.
                    await asyncio.sleep(_catch_up_backoff(attempt))
        except (NotFoundError, ServiceUnavailableError, nats.errors.NoRespondersError):
            # Informational, not lastError: a federation without `history:` is a normal setup.
            self.catch_up.update(historyOffered=False, code=FedCode.HISTORY_MISSING.value)
            self.metrics.errors.labels(code=FedCode.HISTORY_MISSING.value).inc()
            log.info(
                "%s: the seeds keep no task history (no stream %s): events missed while this node was "
                "offline stay missing (a seed operator enables it with `history:` in the seed spec)",
                FedCode.HISTORY_MISSING.value,
                stream,
            )
            self._catch_up_event()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.catch_up.update(historyOffered=None, code=FedCode.HISTORY_REFUSED.value)
            self.record_error(FedCode.HISTORY_REFUSED, f"cannot read the task history {stream}: {describe(exc)}")
            self._catch_up_event()
            return
        max_age = float(info.config.max_age or 0)
        now = time.time()
        last_ms = await asyncio.to_thread(self.store.last_federation_received_at)
        start = None if last_ms is None else last_ms / 1000 - CATCH_UP_OVERLAP_S
        if max_age and start is not None and start < now - max_age:
            start = None  # the hole is older than the history: everything it still holds
        self.catch_up.update(
            historyOffered=True,
            catchingUp=True,
            code=None,
            read=0,
            accepted=0,
            dropped=0,
            pending=int(info.state.messages),
            since=None if start is None else rfc3339(start),
            maxAgeS=int(max_age) or None,
        )
        self._catch_up_event()
        if start is None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        else:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=datetime.fromtimestamp(start, UTC)
            )
        replay = self.pipeline.for_replay()
        position = [0]  # the stream sequence to read on from after a stall (0: from `config`)
        try:
            failure: Exception | None = None
            for attempt in range(CATCH_UP_ATTEMPTS if info.state.messages else 0):
                if position[0]:
                    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=position[0])
                try:
                    if await self._read_history(js, stream, config, replay, position):
                        break
                    failure = TimeoutError(f"none delivered for {CATCH_UP_STALL_S:.0f} s")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._js_refused:
                        raise
                    failure = exc
                if attempt == CATCH_UP_ATTEMPTS - 1:
                    raise failure
                log.warning(
                    "catch-up from %s stalled (%s; a seed gone?): reading on from stream sequence %s "
                    "with a new consumer",
                    stream,
                    describe(failure),
                    position[0] or "the start",
                )
                await asyncio.sleep(_catch_up_backoff(attempt))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.catch_up["code"] = FedCode.HISTORY_REFUSED.value
            why = f"the seed refused {self._js_refused}" if self._js_refused else describe(exc)
            self.record_error(FedCode.HISTORY_REFUSED, f"catch-up from {stream} stopped: {why}")
        finally:
            self.catch_up["catchingUp"] = False
        self.catch_up["lastCompletedAt"] = rfc3339()
        c = self.catch_up
        log.info("catch-up from %s: %d read, %d accepted, %d dropped", stream, c["read"], c["accepted"], c["dropped"])
        self._catch_up_event()

    async def _read_history(self, js: Any, stream: str, config: Any, replay: Any, position: list[int]) -> bool:
        """One ordered consumer over the history: True once nothing is pending, False when it
        stalled with events still pending (its seed died: nats-py's own consumer reset cannot
        resume a by-start-time consumer). `position[0]` follows the next stream sequence to read."""
        sub = await js.subscribe(
            history_subject(self.config.subject_prefix),
            stream=stream,
            ordered_consumer=True,
            config=config,
            pending_msgs_limit=200_000,
        )
        c = self.catch_up
        pending: int | None = None  # unknown until the first event (or the consumer's info)
        progress = time.monotonic()
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except TimeoutError:
                    idle = time.monotonic() - progress
                    if pending is None and idle >= CATCH_UP_IDLE_S:
                        try:  # nothing delivered at all: nothing to catch up, or a consumer gone?
                            if (await sub.consumer_info()).num_pending == 0:
                                return True
                        except Exception as exc:
                            log.debug("catch-up consumer info: %s", describe(exc))
                    if idle >= CATCH_UP_STALL_S:
                        return False
                    continue
                progress = time.monotonic()
                meta = msg.metadata
                ts = meta.timestamp.timestamp() if meta.timestamp else time.time()
                ok = self._receive(replay, msg.subject, msg.data, msg.headers, ts, int(ts * 1000))
                position[0] = int(meta.sequence.stream) + 1
                pending = int(meta.num_pending)
                c["read"] += 1
                c["accepted" if ok else "dropped"] += 1
                c["pending"] = pending
                if c["read"] % CATCH_UP_PROGRESS_EVERY == 0:
                    self._catch_up_event()
                if pending == 0:
                    return True
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("catch-up unsubscribe: %s", describe(exc))

    def _pinned_key(self, node_id: str) -> str | None:
        return self.store.pinned_key(node_id)

    # ---- shutdown ----

    async def _shutdown(self) -> None:
        nc = self._nc
        if nc is not None and nc.is_connected and (self.broadcast_tasks or self.broadcast_stats):
            # Flush what is waiting (bounded), then say goodbye.
            deadline = time.monotonic() + 1.0
            while (self._buffer or self._unconfirmed) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            message = anonymizer.presence_message(
                "node_offline",
                node_id=self.identity.node_id,
                region=self.config.region,
                version=__version__,
                tasks_reported=self.tasks_reported(),
            )
            payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
            item = _Outgoing(
                KIND_PRESENCE,
                subject_for(KIND_PRESENCE, self.identity.node_id, self.config.subject_prefix),
                payload,
                self.identity.headers(payload),
            )
            try:
                await nc.publish(item.subject, item.payload, headers=item.headers)
                await nc.flush(timeout=2)
                self._sent(item)
            except Exception as exc:
                log.warning("could not send node_offline: %s", describe(exc))
        if self._stop_event is not None:
            self._stop_event.set()  # _main cancels its tasks and closes the connection

    async def _close(self, nc: nats.NATS) -> None:
        try:
            if not nc.is_closed:
                await asyncio.wait_for(nc.close(), timeout=3)
        except Exception as exc:
            log.debug("close: %s", describe(exc))
