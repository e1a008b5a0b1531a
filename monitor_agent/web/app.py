"""`create_app(agent)`: the Flask app of the agent (API, /ws, dashboard, /metrics)."""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from ..errors import StoreError
from ..interfaces import AgentLike
from . import api, dashboard, prometheus, ws
from .auth import ensure_api_token
from .hosts import HostAllowList, HostGuard
from .responses import error_response
from .state import EXTENSION, WebOptions, WebState
from .validation import MAX_BODY_BYTES, MAX_QUERY_BYTES, BadRequest

log = logging.getLogger(__name__)

_MESSAGES = {
    404: "no such path: see /api/openapi.json for the API",
    405: "method not allowed on this path",
    413: f"request body too large: at most {MAX_BODY_BYTES} bytes",
}


def create_app(agent: AgentLike, *, token: str | None = None, options: WebOptions | None = None) -> Flask:
    """Build the web app around a constructed agent (started or not).

    The API token is `token`, else MONITOR_API_TOKEN, else the one generated in DATA_DIR.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    if token is None:
        api_token = ensure_api_token(agent.config.api_token, agent.config.data_dir)
        token, token_path = api_token.value, api_token.path
    else:
        token_path = None
    allowed_hosts = HostAllowList(agent.config.monitor_host, agent.config.allowed_hosts)
    web = WebState(
        agent=agent,
        token=token,
        token_path=token_path,
        options=options or WebOptions(),
        allowed_hosts=allowed_hosts,
    )
    app.extensions[EXTENSION] = web
    # Every route and the /ws handshake: a Host not on the list (DNS rebinding) gets 421.
    app.wsgi_app = HostGuard(  # type: ignore[method-assign]  # Flask's documented middleware hook
        app.wsgi_app, allowed_hosts, "MONITOR_ALLOWED_HOSTS"
    )

    app.register_blueprint(api.bp)
    app.register_blueprint(prometheus.bp)
    app.register_blueprint(dashboard.bp)
    ws.init_ws(app)
    prometheus.register(getattr(agent, "metrics_registry", None), web)

    @app.before_request
    def _limit_query():
        if len(request.query_string) > MAX_QUERY_BYTES:
            return error_response(414, f"query string too long: at most {MAX_QUERY_BYTES} bytes")
        return None

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if resp.mimetype == "text/html":
            resp.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            )
        return resp

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest):
        return error_response(400, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = _MESSAGES.get(status) or exc.description or exc.name
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return error_response(status, message, headers)

    @app.errorhandler(StoreError)
    @app.errorhandler(sqlite3.Error)
    def _database_fault(exc: Exception):
        # A real fault (disk full, locked, closed store): logged, and said plainly; local data is intact.
        log.error("database error answering %s %s: %s", request.method, request.path, exc)
        return error_response(503, f"database unavailable: {exc}")

    @app.errorhandler(Exception)
    def _fault(exc: Exception):
        # A real fault: log it with its traceback, answer without internals.
        log.exception("error answering %s %s", request.method, request.path)
        return error_response(500, "internal error: the agent log has the details")

    return app
