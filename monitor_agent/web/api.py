"""The JSON API (PROTOCOL.md §6 plus the local side): thin handlers over the agent's queries."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, request

from .. import __version__
from ..store import now_ms
from . import serializers as ser
from . import shapes
from .auth import bearer_matches
from .openapi import openapi_document
from .responses import error_response, json_response, raw_json_response
from .state import state
from .validation import (
    BadRequest,
    check_params,
    parse_compare,
    parse_empty_object,
    parse_global_tasks,
    parse_json_object,
    parse_local_tasks,
    parse_settings,
)

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

UNAUTHORIZED = "missing or wrong token: send Authorization: Bearer <MONITOR_API_TOKEN>"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="monitor-agent"'}


def no_params(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse query parameters on endpoints that take none (a typo should not pass silently)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_params(request.args.to_dict(flat=False), ())
        return view(*args, **kwargs)

    return wrapper


def authenticated() -> bool | None:
    """True with the right token, False with a wrong one, None when no Authorization was sent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    return bearer_matches(header, state().token)


def require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticated():
            return error_response(401, UNAUTHORIZED, _CHALLENGE)
        return view(*args, **kwargs)

    return wrapper


def _body(*, allow_empty: bool) -> dict[str, Any]:
    return parse_json_object(request.get_data(cache=False), request.content_type, allow_empty=allow_empty)


# ---- liveness, readiness, the document ----


@bp.get("/health")
@no_params
def health():
    return json_response(shapes.Health(status="ok", version=__version__))


@bp.get("/ready")
@no_params
def ready():
    agent = state().agent
    try:
        writable = bool(agent.store.check_writable())
    except Exception:  # a broken database is exactly what readiness reports
        log.exception("readiness: database check failed")
        writable = False
    status = agent.status()
    body = shapes.Ready(
        ready=writable,
        database="writable" if writable else "not writable",
        federation=shapes.ReadyFederation(
            enabled=bool(status.get("enabled")), state=status.get("state") or "DISABLED"
        ),
    )
    return json_response(body, 200 if writable else 503)


@bp.get("/openapi.json")
@no_params
def openapi():
    return json_response(openapi_document())


# ---- federation (PROTOCOL.md §6) ----


@bp.get("/federation/status")
@no_params
def federation_status():
    return json_response(ser.status(state().agent.status()))


@bp.get("/federation/tasks/global")
def federation_tasks():
    q = parse_global_tasks(request.args.to_dict(flat=False))
    tasks_json, total = state().agent.store.query_federation_tasks_json(
        ser.FEDERATION_TASK_SQL, q.limit, q.chain_id, q.since
    )
    # shapes.GlobalTasks, its tasks' JSON made by SQLite (the hot path; a test decodes it strictly).
    return raw_json_response(f'{{"tasks":{tasks_json},"total":{int(total)}}}')


@bp.get("/federation/peers")
@no_params
def federation_peers():
    now = now_ms()
    peers = [ser.peer(p, now) for p in state().agent.store.list_peers()]
    return json_response(shapes.Peers(peers=peers, total=len(peers)))


@bp.get("/federation/settings")
@no_params
def get_settings():
    return json_response(ser.settings(state().agent))


@bp.post("/federation/settings")
@no_params
@require_token
def post_settings():
    changes = parse_settings(_body(allow_empty=False))
    agent = state().agent
    _settings, restart_required = agent.apply_settings(changes)
    log.info("settings changed through the API: %s (restart required: %s)", changes, restart_required)
    return json_response(ser.settings_applied(agent, restart_required))


@bp.post("/federation/clear")
@no_params
@require_token
def clear_federation():
    parse_empty_object(_body(allow_empty=True))
    deleted = state().agent.clear_federation_data()
    log.info("federation data erased through the API: %s", deleted)
    return json_response(
        shapes.Cleared(shapes.Deleted(tasks=int(deleted.get("tasks", 0)), peers=int(deleted.get("peers", 0))))
    )


@bp.get("/compare")
def compare():
    q = parse_compare(request.args.to_dict(flat=False))
    return raw_json_response(state().agent.compare.compare_json(q.chain_id, q.task_type, q.window))


# ---- this node ----


@bp.get("/tasks")
def local_tasks():
    q = parse_local_tasks(request.args.to_dict(flat=False))
    auth = authenticated()
    if auth is False:
        return error_response(401, UNAUTHORIZED, _CHALLENGE)
    rows, total = state().agent.store.list_local_tasks(q.limit, q.offset, q.status)
    tasks = [ser.local_task(t, bool(auth)) for t in rows]
    return json_response(shapes.LocalTasks(tasks=tasks, total=int(total), private=bool(auth)))


@bp.get("/stats")
@no_params
def local_stats():
    return json_response(ser.local_stats(state().agent.store.local_stats()))


@bp.get("/privacy")
@no_params
def privacy():
    agent = state().agent
    return json_response(ser.privacy(agent.outbox_snapshot(), ser.privacy_blocked(agent)))


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest):
    return error_response(400, str(exc))
