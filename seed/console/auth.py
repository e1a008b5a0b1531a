"""Operator login: bcrypt-checked password from the secrets dir, session cookie, CSRF, rate limit.

Everything of the console needs a logged-in session except its own /healthz, the login page and
static assets; /metrics also accepts its own bearer token (for Prometheus).
"""

from __future__ import annotations

import hmac
import logging
import secrets as _random
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import bcrypt
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

OPERATOR = "operator"
PUBLIC_ENDPOINTS = {"auth.login", "console_healthz", "static"}


class LoginLimiter:
    """At most `attempts` failed logins per client address per `window_s`; thread-safe."""

    def __init__(self, attempts: int = 5, window_s: float = 60.0):
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until `client` may try again (0: now)."""
        now = now or time.monotonic()
        with self._lock:
            q = self._failures.get(client)
            if not q:
                return 0
            while q and now - q[0] > self.window_s:
                q.popleft()
            if len(q) < self.attempts:
                return 0
            return max(1, int(self.window_s - (now - q[0])) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures.clear()
            self._failures.setdefault(client, deque(maxlen=self.attempts)).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


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
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    return bool(token) and header.startswith("Bearer ") and _same(header[7:].strip(), token)


def gate():
    """before_request: let public endpoints and logged-in operators through; refuse the rest."""
    if request.method == "POST" and not _csrf_ok():
        return _refuse(400, "csrf", "the form expired or did not come from this console: reload and retry")
    if request.endpoint in PUBLIC_ENDPOINTS or session.get("user") == OPERATOR:
        return None
    if request.endpoint == "metrics.metrics" and _bearer_ok():
        return None
    if request.path.startswith("/api/") or request.endpoint in ("metrics.metrics", None):
        return _refuse(
            401, "unauthorized", "log in to the console (or send the metrics bearer token to /metrics)"
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _refuse(code: int, kind: str, message: str):
    resp = jsonify({"error": {"code": kind, "message": message}})
    resp.status_code = code
    if code == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="seed-console"'
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    status = 200
    if request.method == "POST":
        client = request.remote_addr or "?"
        limiter: LoginLimiter = current_app.extensions["login_limiter"]
        wait = limiter.retry_after(client)
        if wait:
            error, status = f"Too many failed logins: try again in {wait} s.", 429
            log.warning("login rate limit hit by %s", client)
        elif _password_ok(request.form.get("password", "")):
            limiter.succeeded(client)
            target = _safe_next(request.form.get("next"))
            session.clear()  # a fresh session at login: no fixation
            session["user"] = OPERATOR
            session.permanent = True
            csrf_token()
            log.info("operator logged in from %s", client)
            return redirect(target)
        else:
            limiter.failed(client)
            error, status = "Wrong password.", 401
            log.warning("failed console login from %s", client)
    resp = current_app.make_response(
        (render_template("login.html", error=error, next=request.values.get("next", "")), status)
    )
    if status == 429:
        resp.headers["Retry-After"] = str(wait)
    return resp


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
