"""Operator login: bcrypt-checked password from the secrets dir, session cookie, CSRF, rate limit.

Everything of the console needs a logged-in session except its own /healthz, the login page and
static assets; /metrics also accepts its own bearer token (for Prometheus).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets as _random
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from . import params

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

OPERATOR = "operator"
PUBLIC_ENDPOINTS = {"auth.login", "console_healthz", "static"}
DEVICE_COOKIE = "seed_console_device"
DEVICE_MAX_AGE_S = 180 * 86400


class LoginLimiter:
    """Throttles password guessing so that an attacker can neither dodge it (by changing source
    address) nor turn it against the operator (by failing on purpose). Thread-safe, bounded memory.

    - Per address: after `per_address` failed checks in `window_s`, that address waits
      2, 4, 8 ... s (at most `max_wait_s`) between checks.
    - Globally, all addresses together: after `budget` failed checks in `window_s`, every further
      check waits a delay after the previous one that grows with the failures (1 s per failure
      past the budget, up to `max_wait_s`): guesses from 10 000 addresses are as slow as from one.
    - A browser that has logged in before (its signed device cookie) is never held back by
      either; it has its own allowance (`per_address` failures per window, then it counts as
      unknown). So the operator's usual browser gets in with the right password at once, however
      hard someone else is guessing; an unknown browser is delayed, never locked out for good.

    A delayed attempt is answered 429 with Retry-After and its password is not checked (so it
    costs no bcrypt and tells nothing). Only checked, wrong passwords count as failures.
    """

    def __init__(
        self,
        per_address: int = 5,
        budget: int = 20,
        window_s: float = 900.0,
        max_wait_s: float = 60.0,
        max_addresses: int = 10_000,
    ):
        self.per_address = per_address
        self.budget = budget
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self.max_addresses = max_addresses
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first
        self._devices: OrderedDict[str, deque[float]] = OrderedDict()
        self._global: deque[float] = deque()
        self._next_global = 0.0  # no unknown browser's password is checked before this
        self._lock = threading.Lock()

    def _prune(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window_s:
            q.popleft()

    def _address_wait(self, client: str, now: float) -> float:
        q = self._addresses.get(client)
        if not q:
            return 0.0
        self._prune(q, now)
        if len(q) < self.per_address:
            return 0.0
        wait = min(self.max_wait_s, 2.0 ** (len(q) - self.per_address + 1))
        return max(0.0, q[-1] + wait - now)

    def _global_delay(self, failures: int) -> float:
        return 0.0 if failures < self.budget else min(self.max_wait_s, float(failures - self.budget + 1))

    def trusted(self, device: str | None, now: float | None = None) -> bool:
        """Whether `device` (a verified device id) still has its own allowance."""
        if not device:
            return False
        now = now or time.monotonic()
        with self._lock:
            q = self._devices.get(device)
            if q is None:
                return True
            self._prune(q, now)
            return len(q) < self.per_address

    def acquire(self, client: str, device: str | None = None, now: float | None = None) -> int:
        """0: check this attempt's password now; else the seconds to wait (answer 429)."""
        now = now or time.monotonic()
        if self.trusted(device, now):
            return 0
        with self._lock:
            self._prune(self._global, now)
            wait = max(self._address_wait(client, now), self._next_global - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            # Reserve the slot as if this check fails: concurrent guesses cannot share it.
            self._next_global = now + self._global_delay(len(self._global) + 1)
            return 0

    def failed(self, client: str, device: str | None = None, now: float | None = None) -> None:
        now = now or time.monotonic()
        with self._lock:
            if device:
                q = self._devices.pop(device, deque(maxlen=self.per_address))
                q.append(now)
                self._devices[device] = q
                while len(self._devices) > 1000:
                    self._devices.popitem(last=False)
            q = self._addresses.pop(client, deque(maxlen=64))
            q.append(now)
            self._addresses[client] = q  # most recent last
            while len(self._addresses) > self.max_addresses:
                self._addresses.popitem(last=False)  # forgets an old address, never the global count
            self._prune(self._global, now)
            self._global.append(now)
            if len(self._global) > 100_000:
                self._global.popleft()
            self._next_global = max(self._next_global, now + self._global_delay(len(self._global)))

    def succeeded(self, client: str, device: str | None = None) -> None:
        with self._lock:
            self._addresses.pop(client, None)
            if device:
                self._devices.pop(device, None)


class SessionStore:
    """Server-side record of live operator sessions: the cookie only names one. Logging out
    deletes it (a copied cookie is dead), and a session made under another operator password
    is dead too (change `console.password` and every session ends, no restart needed)."""

    def __init__(self, lifetime_s: float, max_sessions: int = 100):
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[float, str]] = OrderedDict()  # sid -> (created, password fp)
        self._lock = threading.Lock()

    def create(self, password_fp: str) -> str:
        sid = _random.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = (time.monotonic(), password_fp)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sid

    def valid(self, sid: object, password_fp: str | None) -> bool:
        if not isinstance(sid, str) or password_fp is None:
            return False
        with self._lock:
            entry = self._sessions.get(sid)
            if entry is None:
                return False
            created, fp = entry
            if fp != password_fp or time.monotonic() - created > self.lifetime_s:
                del self._sessions[sid]
                return False
            return True

    def revoke(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._sessions.pop(sid, None)

    def revoke_all(self) -> None:
        with self._lock:
            self._sessions.clear()


class PasswordWatch:
    """A fingerprint of the stored operator password, re-read only when the file changes."""

    def __init__(self, secrets_dir: Path):
        self.secrets_dir = Path(secrets_dir)
        self._stat: tuple | None = None
        self._fp: str | None = None
        self._lock = threading.Lock()

    def fingerprint(self) -> str | None:
        from seed import secrets

        path = secrets.password_path(self.secrets_dir, "console")
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._stat:
                try:
                    value = path.read_text(encoding="utf-8").strip()
                except OSError:
                    return None
                self._fp = hashlib.sha256(value.encode()).hexdigest() if value else None
                self._stat = key
            return self._fp


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = _random.token_urlsafe(24)
    return token


def _csrf_ok() -> bool:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    return bool(expected) and _same(sent, expected)


def _same(given: str, expected: str) -> bool:
    """Constant-time equality; on bytes, because compare_digest refuses non-ASCII str (a 500)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not bounce the operator to another site."""
    if not target:
        return url_for("pages.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.overview")
    return target


def _password_ok(given: str) -> bool:
    from seed import secrets

    stored = secrets.bcrypt_hash(current_app.config["SECRETS_DIR"], "console", create=False)
    try:
        return bcrypt.checkpw(given.encode(), stored.encode())
    except ValueError:
        return False


def _bearer_ok() -> bool:
    token: str | None = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    return bool(token) and header.startswith("Bearer ") and _same(header[7:].strip(), token or "")


def gate():
    """before_request: let public endpoints and logged-in operators through; refuse the rest."""
    if request.method == "POST" and not _csrf_ok():
        return _refuse(400, "csrf", "the form expired or did not come from this console: reload and retry")
    if request.endpoint in PUBLIC_ENDPOINTS or logged_in():
        return None
    if request.endpoint == "metrics.metrics" and _bearer_ok():
        return None
    if request.path.startswith("/api/") or request.endpoint in ("metrics.metrics", None):
        return _refuse(
            401, "unauthorized", "log in to the console (or send the metrics bearer token to /metrics)"
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def logged_in() -> bool:
    """An operator session that the server still holds (not logged out, same password, not expired)."""
    if session.get("user") != OPERATOR:
        return False
    ext = current_app.extensions
    return ext["console_sessions"].valid(session.get("sid"), ext["password_watch"].fingerprint())


def _devices() -> URLSafeTimedSerializer:
    key = current_app.secret_key
    assert key is not None  # create_app sets SECRET_KEY
    return URLSafeTimedSerializer(key, salt="seed-console-device")


def _device_id() -> str | None:
    """The id in this browser's device cookie, if the console signed it (a past good login)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 512:
        return None
    try:
        value = _devices().loads(raw, max_age=DEVICE_MAX_AGE_S)
    except BadSignature:
        return None
    return value if isinstance(value, str) else None


def _refuse(code: int, kind: str, message: str):
    resp = jsonify({"error": {"code": kind, "message": message}})
    resp.status_code = code
    if code == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="seed-console"'
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login():
    args = params.query(next=params.text(2048))
    error = None
    status = 200
    wait = 0
    device = None
    if request.method == "POST":
        client = request.remote_addr or "?"
        device = _device_id()
        limiter: LoginLimiter = current_app.extensions["login_limiter"]
        wait = limiter.acquire(client, device)
        if wait:
            error, status = f"Too many failed logins on this console: try again in {wait} s.", 429
            log.warning("login delayed for %s (%d s)", client, wait)
        elif _password_ok(request.form.get("password", "")):
            limiter.succeeded(client, device)
            target = _safe_next(request.form.get("next"))
            session.clear()  # a fresh session at login: no fixation
            session["user"] = OPERATOR
            session["sid"] = current_app.extensions["console_sessions"].create(
                current_app.extensions["password_watch"].fingerprint() or ""
            )
            session.permanent = True
            csrf_token()
            log.info("operator logged in from %s", client)
            resp = redirect(target)
            if device is None:  # this browser is now a known one: the limiter never holds it back
                resp.set_cookie(
                    DEVICE_COOKIE,
                    _devices().dumps(_random.token_urlsafe(16)),
                    max_age=DEVICE_MAX_AGE_S,
                    httponly=True,
                    samesite="Strict",
                    secure=current_app.config["SESSION_COOKIE_SECURE"],
                )
            return resp
        else:
            limiter.failed(client, device)
            error, status = "Wrong password.", 401
            log.warning("failed console login from %s", client)
    next_target = request.form.get("next", "") if request.method == "POST" else args.get("next", "")
    resp = current_app.make_response((render_template("login.html", error=error, next=next_target), status))
    if status == 429:
        resp.headers["Retry-After"] = str(wait)
    return resp


@bp.route("/logout", methods=["POST"])
def logout():
    current_app.extensions["console_sessions"].revoke(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))
