"""The OpenAPI 3.1 document of the agent's HTTP API (served at /api/openapi.json), generated.

The schemas are generated from the response Structs in web/shapes.py (msgspec's JSON Schema),
the same types the handlers answer with; only the routes' summaries, query parameters and error
statuses are written here. A test holds ROUTES to the app's URL map: a route without its
response shape here fails the suite.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import __version__
from ..model import TASK_STATUSES
from . import shapes
from .validation import COMPARE_WINDOWS, DEFAULT_LIMIT, MAX_CHAIN_ID, MAX_LIMIT, MAX_OFFSET

REF = "#/components/schemas/{name}"


@dataclass(frozen=True)
class Route:
    summary: str
    response: type[msgspec.Struct] | None  # None: not JSON of ours (this document itself)
    params: tuple[dict[str, Any], ...] = ()
    token: bool = False  # write endpoints: the bearer token is required
    body: dict[str, Any] | None = None  # request body schema
    errors: dict[int, str] = field(default_factory=dict)  # extra statuses -> description


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_LIMIT = _q(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    "How many tasks (1-1000, default 100).",
)
_CHAIN = {"type": "integer", "minimum": 0, "maximum": MAX_CHAIN_ID}
_BODY_TOO_LARGE = {413: "Body over 16 KiB."}

# (path, method) -> what it answers. Every JSON route of the app is here (a test checks).
ROUTES: dict[tuple[str, str], Route] = {
    ("/api/health", "get"): Route("Liveness: the process answers.", shapes.Health),
    ("/api/ready", "get"): Route(
        "Readiness: the database is writable (federation state is reported, not required).",
        shapes.Ready,
        errors={503: "The database is not writable."},
    ),
    ("/api/openapi.json", "get"): Route("This document.", None),
    ("/api/federation/status", "get"): Route(
        "Federation state, node id, last error, network stats.", shapes.Status
    ),
    ("/api/federation/tasks/global", "get"): Route(
        "Tasks received from the federation, newest first.",
        shapes.GlobalTasks,
        (
            _LIMIT,
            _q("chainId", _CHAIN, "Only this chain."),
            _q("since", {"type": "string", "format": "date-time"}, "Only tasks received after this time."),
        ),
    ),
    ("/api/federation/peers", "get"): Route("Peers heard from in the last 10 minutes.", shapes.Peers),
    ("/api/federation/settings", "get"): Route(
        "The four federation switches and read-only facts.", shapes.Settings
    ),
    ("/api/federation/settings", "post"): Route(
        "Change switches (applied live where possible, persisted in DATA_DIR); restartRequired is "
        "false when every change was applied live.",
        shapes.SettingsApplied,
        token=True,
        body={"$ref": REF.format(name="SettingsChange"), "minProperties": 1},
        errors=_BODY_TOO_LARGE,
    ),
    ("/api/federation/clear", "post"): Route(
        "Delete every received federation task and peer (right to erasure).",
        shapes.Cleared,
        token=True,
        body={"type": "object", "maxProperties": 0},
        errors=_BODY_TOO_LARGE,
    ),
    ("/api/compare", "get"): Route(
        "Me vs network: this node's figures against the federation's, with a verdict (docs/compare.md).",
        shapes.Compare,
        (
            _q("chainId", _CHAIN, "Only this chain (default: every chain seen)."),
            _q(
                "taskType",
                {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
                "Only this task type (default: all types merged).",
            ),
            _q(
                "window",
                {"type": "string", "enum": list(COMPARE_WINDOWS), "default": "1h"},
                "The window: 1h (10-minute buckets) or 24h (1-hour buckets).",
            ),
        ),
    ),
    ("/api/tasks", "get"): Route(
        "This node's tasks, newest first; private fields only with the token.",
        shapes.LocalTasks,
        (
            _LIMIT,
            _q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, "Skip this many."),
            _q("status", {"type": "string", "enum": list(TASK_STATUSES)}, "Only this status."),
        ),
        errors={401: "Wrong bearer token (none: the public fields)."},
    ),
    ("/api/stats", "get"): Route("This node's task counters.", shapes.LocalStats),
    ("/api/privacy", "get"): Route(
        "Last outgoing messages exactly as sent, and what is never shared.", shapes.Privacy
    ),
}

# Request bodies and the error answer are shapes too (generated with the responses).
EXTRA_SHAPES: tuple[type[msgspec.Struct], ...] = (shapes.Error, shapes.SettingsChange)


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _content({"$ref": REF.format(name="Error")})}


def _operation(route: Route) -> dict[str, Any]:
    if route.response is None:
        return {
            "summary": route.summary,
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
        }
    ok = {"$ref": REF.format(name=route.response.__name__)}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": _content(ok)},
        "400": _error("A bad parameter; the message names it."),
        "414": _error("Query string over the limit (every route checks it before anything else)."),
        "503": _error("The database is unavailable (disk full, locked, damaged); the agent log has details."),
    }
    if route.token:
        responses["401"] = _error("Missing or wrong bearer token.")
    for status, description in route.errors.items():
        # /api/ready answers its own shape with 503; the others answer the error shape.
        responses[str(status)] = (
            {"description": description, "content": _content(ok)}
            if route.response is shapes.Ready and status == 503
            else _error(description)
        )
    op: dict[str, Any] = {"summary": route.summary, "responses": responses}
    if route.params:
        op["parameters"] = list(route.params)
    if route.token:
        op["security"] = [{"bearer": []}]
    elif route.errors.get(401):
        op["security"] = [{}, {"bearer": []}]
    if route.body is not None:
        op["requestBody"] = {"required": route.body.get("$ref") is not None, "content": _content(route.body)}
    return op


@functools.cache
def _document() -> dict[str, Any]:
    types = [r.response for r in ROUTES.values() if r.response is not None]
    _, schemas = msgspec.json.schema_components([*types, *EXTRA_SHAPES], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), route in ROUTES.items():
        paths.setdefault(path, {})[method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TrueBit monitor agent API",
            "version": __version__,
            "description": "Local API of monitor-agent (docs/PROTOCOL.md §6). Write endpoints and private "
            "data need `Authorization: Bearer $MONITOR_API_TOKEN`. Live events: WebSocket at /ws. "
            "Generated from the response types in monitor_agent/web/shapes.py.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_document() -> dict[str, Any]:
    """A fresh copy (callers may not mutate the cached one)."""
    return copy.deepcopy(_document())
