"""`create_app(spec_path)`: the Flask health console (blueprints, login gate, sampler, history)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from . import api, auth, metrics, pages
from .history import History
from .sampler import Sampler

log = logging.getLogger(__name__)

CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"


def default_db_path(spec) -> Path:
    return Path(spec.state_dir) / "console.db"


def create_app(
    spec_path: str | Path,
    *,
    db_path: str | Path | None = None,
    interval: float | None = None,
    refresh_s: float | None = None,
    timeout: float = 2.0,
    start_sampler: bool = True,
    secure_cookies: bool = False,
    bind_host: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    via: str = "auto",
) -> Flask:
    """The console for one spec. Raises SpecError (bad spec) or SecretError (unusable secrets dir).

    Host names answered: loopback, `bind_host` (default console.host of the spec) when it is a
    specific address, console.allowed_hosts of the spec and `allowed_hosts`; others get 421."""
    from monitor_agent.web.hosts import HostAllowList, HostGuard
    from seed import secrets

    sampler_box: dict = {}
    registry, poll_hist = metrics.build_registry(lambda: sampler_box.get("s"))

    from seed.spec import load_spec

    spec = load_spec(spec_path)  # a broken spec fails here, before anything listens
    history_path = Path(db_path) if db_path else default_db_path(spec)
    history = History(history_path, spec.console.history_days)
    sampler = Sampler(
        spec_path, history, interval=interval, timeout=timeout, poll_histogram=poll_hist, via=via
    )
    sampler_box["s"] = sampler

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.password(spec.secrets_dir, "console-session"),
        SESSION_COOKIE_NAME="seed_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        SECRETS_DIR=spec.secrets_dir,
        METRICS_TOKEN=secrets.password(spec.secrets_dir, "console-metrics"),
        REFRESH_S=refresh_s or min(10.0, sampler.interval),
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    secrets.bcrypt_hash(spec.secrets_dir, "console")  # the operator password exists from the start
    app.extensions["sampler"] = sampler
    app.extensions["history"] = History(history_path, spec.console.history_days)  # request threads' own
    app.extensions["metrics_registry"] = registry
    app.extensions["login_limiter"] = auth.LoginLimiter()
    app.extensions["console_sessions"] = auth.SessionStore(app.permanent_session_lifetime.total_seconds())
    app.extensions["password_watch"] = auth.PasswordWatch(spec.secrets_dir)
    app.jinja_env.globals["csrf_token"] = auth.csrf_token

    app.before_request(auth.gate)
    for bp in (auth.bp, pages.bp, api.bp, metrics.bp):
        app.register_blueprint(bp)

    @app.route("/healthz")
    def console_healthz():
        if sampler.stalled:
            return jsonify({"status": "stalled"}), 503
        return jsonify({"status": "ok"})

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.path == "/metrics":
            return api.error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        return render_template("error.html", code=exc.code, title=exc.name, message=exc.description), exc.code

    @app.errorhandler(Exception)
    def crash(exc: Exception):  # a real fault: logged with its traceback, a plain page for the operator
        log.exception("console error on %s", request.path)
        if request.path.startswith("/api/"):
            return api.error(500, "internal", "internal error (logged on the console host)")
        return render_template("error.html", code=500, title="Internal error", message="It is logged."), 500

    # Every route: a Host not on the list (DNS rebinding) gets 421 before the app sees it.
    hosts = HostAllowList(bind_host or spec.console.host, (*spec.console.allowed_hosts, *allowed_hosts))
    app.wsgi_app = HostGuard(  # type: ignore[method-assign]  # Flask's documented middleware hook
        app.wsgi_app, hosts, "console.allowed_hosts in the spec (or seedctl console --allowed-host)"
    )

    if start_sampler:
        sampler.start()
    return app
