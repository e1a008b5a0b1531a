"""The OpenAPI 3.1 document of the agent's HTTP API (served at /api/openapi.json).

Built as plain data; tests validate real responses against these schemas, so a field added to
serializers.py without a schema here fails the suite.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from .. import __version__
from ..model import TASK_STATUSES
from ..protocol import REGIONS, FederationState
from .validation import COMPARE_WINDOWS, DEFAULT_LIMIT, MAX_CHAIN_ID, MAX_LIMIT, MAX_OFFSET

TIMESTAMP = {"type": "string", "format": "date-time", "examples": ["2024-01-15T10:30:00Z"]}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_INT = {"type": ["integer", "null"]}
SWITCH_NAMES = ("enabled", "broadcastTasks", "broadcastStats", "receiveEnabled")


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra}
    schema["required"] = list(props) if required is None else required
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SETTINGS_PROPS: dict[str, Any] = {
    "enabled": {"type": "boolean", "description": "Federation on (opt-in)."},
    "broadcastTasks": {"type": "boolean"},
    "broadcastStats": {"type": "boolean"},
    "receiveEnabled": {"type": "boolean"},
    "seedUrl": {"type": "string", "description": "Seed URL list, password removed."},
    "nodeId": {"type": ["string", "null"]},
    "region": {"type": "string", "enum": list(REGIONS)},
    "privacy": {"type": "string", "enum": ["standard", "strict"]},
    "version": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {
                        "type": "string",
                        "enum": [
                            "bad_request",
                            "unauthorized",
                            "forbidden",
                            "not_found",
                            "method_not_allowed",
                            "payload_too_large",
                            "uri_too_long",
                            "upgrade_required",
                            "internal_error",
                            "unavailable",
                        ],
                    },
                    "message": {"type": "string", "description": "Names the parameter and what is allowed."},
                }
            )
        }
    ),
    "FederationError": _obj(
        {
            "code": {"type": "string", "pattern": "^(FED_0[0-9][0-9])?$"},
            "message": {"type": "string"},
            "at": NULLABLE_TIMESTAMP,
        }
    ),
    "Status": _obj(
        {
            "enabled": {"type": "boolean"},
            "connected": {"type": "boolean"},
            "state": {"type": "string", "enum": [s.value for s in FederationState]},
            "nodeId": {"type": ["string", "null"]},
            "lastError": {"oneOf": [{"type": "null"}, _ref("FederationError")]},
            "catchUp": _obj(
                {
                    "catchingUp": {"type": "boolean"},
                    "historyOffered": {"type": ["boolean", "null"]},
                    "code": {"type": ["string", "null"], "pattern": "^FED_0[0-9][0-9]$"},
                    "read": {"type": "integer", "minimum": 0},
                    "accepted": {"type": "integer", "minimum": 0},
                    "dropped": {"type": "integer", "minimum": 0},
                    "pending": {"type": "integer", "minimum": 0},
                    "since": NULLABLE_TIMESTAMP,
                    "lastCompletedAt": NULLABLE_TIMESTAMP,
                    "maxAgeS": NULLABLE_INT,
                }
            ),
            "stats": _obj(
                {
                    "connectedPeers": {"type": "integer", "minimum": 0},
                    "tasks24h": {"type": "integer", "minimum": 0},
                    "activeNodes": {"type": "integer", "minimum": 0},
                    "tasksCompleted24h": {"type": "integer", "minimum": 0},
                    "avgExecutionMs": NULLABLE_INT,
                }
            ),
        }
    ),
    "GlobalTask": _obj(
        {
            "taskId": {"type": "string", "examples": ["global-task-5d41402abc4b"]},
            "chainId": {"type": "integer", "minimum": 0},
            "blockNumber": {"type": ["integer", "null"], "minimum": 0},
            "taskType": {"type": "string"},
            "status": {"type": "string", "enum": ["received", "completed", "failed"]},
            "executionTimeMs": {"type": ["integer", "null"], "minimum": 0},
            "receivedAt": TIMESTAMP,
            "sourceNode": {"type": "string"},
        }
    ),
    "GlobalTasks": _obj(
        {
            "tasks": {"type": "array", "items": _ref("GlobalTask")},
            "total": {"type": "integer", "minimum": 0, "description": "All rows matching the filters."},
        }
    ),
    "Peer": _obj(
        {
            "nodeId": {"type": "string"},
            "region": {"type": "string", "enum": list(REGIONS)},
            "online": {"type": "boolean", "description": "Last message under 90 s old."},
            "tasksReported": {"type": "integer", "minimum": 0},
            "lastSeen": NULLABLE_TIMESTAMP,
        }
    ),
    "Peers": _obj({"peers": {"type": "array", "items": _ref("Peer")}, "total": {"type": "integer"}}),
    "Settings": _obj(SETTINGS_PROPS),
    "SettingsApplied": _obj(
        {
            **SETTINGS_PROPS,
            "restartRequired": {
                "type": "boolean",
                "description": "False when every change was applied live.",
            },
        }
    ),
    "SettingsChange": {
        "type": "object",
        "properties": {name: {"type": "boolean"} for name in SWITCH_NAMES},
        "additionalProperties": False,
        "minProperties": 1,
    },
    "LocalTask": _obj(
        {
            "status": {"type": "string", "enum": list(TASK_STATUSES)},
            "receivedAt": NULLABLE_TIMESTAMP,
            "startedAt": NULLABLE_TIMESTAMP,
            "finishedAt": NULLABLE_TIMESTAMP,
            "chainId": NULLABLE_INT,
            "blockNumber": NULLABLE_INT,
            "taskType": {"type": ["string", "null"]},
            "executionTimeMs": NULLABLE_INT,
            "exitCode": NULLABLE_INT,
            "steps": NULLABLE_INT,
            "memoryPeak": NULLABLE_INT,
            "cached": {"type": ["boolean", "null"]},
            "executionId": {"type": ["string", "null"], "description": "Only with the token."},
            "private": {"type": "object", "description": "Only with the token: identifying local data."},
        },
        required=[
            "status",
            "receivedAt",
            "startedAt",
            "finishedAt",
            "chainId",
            "blockNumber",
            "taskType",
            "executionTimeMs",
            "exitCode",
            "steps",
            "memoryPeak",
            "cached",
        ],
    ),
    "LocalTasks": _obj(
        {
            "tasks": {"type": "array", "items": _ref("LocalTask")},
            "total": {"type": "integer", "minimum": 0},
            "private": {"type": "boolean", "description": "True when private fields are included."},
        }
    ),
    "LocalStats": _obj(
        {
            "total": {"type": "integer", "minimum": 0, "description": "All tasks seen, all time."},
            "byStatus": _obj({s: {"type": "integer", "minimum": 0} for s in TASK_STATUSES}),
            "activeTasks": {"type": "integer", "minimum": 0, "description": "Received or running now."},
            "tasks24h": {"type": "integer", "minimum": 0},
            "tasksCompleted24h": {"type": "integer", "minimum": 0},
            "tasksFailed24h": {"type": "integer", "minimum": 0},
            "avgExecutionMs": NULLABLE_INT,
        }
    ),
    "CompareFigures": _obj(
        {
            "events": {"type": "integer", "minimum": 0, "description": "Completed + failed in the window."},
            "completed": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
            "failureRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "tasksPerMinute": {"type": "number", "minimum": 0},
            "executionMs": _obj(
                {q: {"type": ["number", "null"], "minimum": 0} for q in ("p50", "p90", "p99")}
            ),
            "nodes": {"type": "integer", "minimum": 0, "description": "Network only: contributing nodes."},
        },
        required=["events", "completed", "failed", "failureRate", "tasksPerMinute", "executionMs"],
    ),
    "CompareChain": _obj(
        {
            "chainId": {"type": "integer", "minimum": 0},
            "own": _ref("CompareFigures"),
            "network": _ref("CompareFigures"),
            "rank": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {
                            "metric": {"type": "string", "const": "p50ExecutionMs"},
                            "slowerThanPct": {"type": "integer", "minimum": 0, "maximum": 100},
                            "nodes": {"type": "integer", "minimum": 1},
                            "text": {"type": "string"},
                        }
                    ),
                ]
            },
            "verdict": _obj(
                {
                    "verdict": {
                        "type": "string",
                        "enum": ["not_enough_data", "in_line", "your_node", "the_network"],
                    },
                    "rule": {
                        "type": "string",
                        "enum": ["floor", "own_failure_rate", "network_failure_spike", "own_slow", "none"],
                    },
                    "text": {"type": "string", "description": "The verdict in words, with its numbers."},
                    "numbers": {
                        "type": "object",
                        "additionalProperties": {"type": ["number", "null"]},
                        "description": "Every figure the verdict rests on (docs/compare.md).",
                    },
                }
            ),
            "series": {
                "type": "array",
                "items": _obj(
                    {
                        "t": TIMESTAMP,
                        "ownP50": {"type": ["number", "null"]},
                        "networkP50": {"type": ["number", "null"]},
                        "ownFailureRate": {"type": ["number", "null"]},
                        "networkFailureRate": {"type": ["number", "null"]},
                    }
                ),
                "description": "One point per bucket (10 min for 1h, 1 h for 24h), oldest first.",
            },
        }
    ),
    "Compare": _obj(
        {
            "window": {"type": "string", "enum": list(COMPARE_WINDOWS)},
            "windowStart": TIMESTAMP,
            "generatedAt": TIMESTAMP,
            "taskType": {"type": ["string", "null"]},
            "seeding": {"type": "boolean", "description": "True while start-up seeding from the store runs."},
            "sketch": _obj(
                {
                    "algorithm": {"type": "string", "const": "DDSketch"},
                    "relativeAccuracy": {"type": "number"},
                    "nodeRelativeAccuracy": {"type": "number"},
                }
            ),
            "rules": _obj(
                {
                    "minOtherNodes": {"type": "integer"},
                    "minEvents": {"type": "integer"},
                    "zCritical": {"type": "number"},
                    "failureMargin": {"type": "number"},
                    "slowRatio": {"type": "number"},
                }
            ),
            "chains": {"type": "array", "items": _ref("CompareChain")},
        }
    ),
    "Health": _obj({"status": {"type": "string", "const": "ok"}, "version": {"type": "string"}}),
    "Ready": _obj(
        {
            "ready": {"type": "boolean"},
            "database": {"type": "string", "enum": ["writable", "not writable"]},
            "federation": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "state": {"type": "string", "enum": [s.value for s in FederationState]},
                }
            ),
        }
    ),
    "Cleared": _obj(
        {
            "deleted": _obj(
                {"tasks": {"type": "integer", "minimum": 0}, "peers": {"type": "integer", "minimum": 0}}
            )
        }
    ),
    "Privacy": _obj(
        {
            "outbox": {
                "type": "array",
                "items": _obj(
                    {
                        "subject": {"type": ["string", "null"]},
                        "payload": {"type": "string", "description": "The exact bytes sent (UTF-8)."},
                        "headers": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "The NATS headers sent with it: Tbf-Key (this node's public key)"
                            " and Tbf-Sig (the payload's signature).",
                        },
                        "at": NULLABLE_TIMESTAMP,
                        "blocked": {"type": "boolean"},
                        "reason": {"type": ["string", "null"]},
                    }
                ),
            },
            "blocked": {"type": "integer", "minimum": 0},
            "neverShared": {"type": "array", "items": {"type": "string"}},
            "shared": {"type": "array", "items": {"type": "string"}},
        }
    ),
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_BAD = _error("A bad parameter; the message names it.")
_UNAUTH = _error("Missing or wrong bearer token.")
_UNAVAILABLE = _error("The database is unavailable (disk full, locked, damaged); the agent log has details.")
_URI_TOO_LONG = _error("Query string over the limit (every route checks it before anything else).")


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _get(
    summary: str, schema: str, params: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    responses = {"200": _ok(schema), "400": _BAD, "414": _URI_TOO_LONG, "503": _UNAVAILABLE}
    responses.update(extra)
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return op


@functools.cache
def _document() -> dict[str, Any]:
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
    bearer = [{"bearer": []}]
    paths = {
        "/api/health": {"get": _get("Liveness: the process answers.", "Health")},
        "/api/ready": {
            "get": _get(
                "Readiness: the database is writable (federation state is reported, not required).",
                "Ready",
                **{"503": _ok("Ready", "The database is not writable.")},
            )
        },
        "/api/federation/status": {
            "get": _get("Federation state, node id, last error, network stats.", "Status")
        },
        "/api/federation/tasks/global": {
            "get": _get(
                "Tasks received from the federation, newest first.",
                "GlobalTasks",
                [
                    _q("limit", limit, "How many tasks (1-1000, default 100)."),
                    _q(
                        "chainId",
                        {"type": "integer", "minimum": 0, "maximum": MAX_CHAIN_ID},
                        "Only this chain.",
                    ),
                    _q(
                        "since",
                        {"type": "string", "format": "date-time"},
                        "Only tasks received after this time.",
                    ),
                ],
            )
        },
        "/api/federation/peers": {"get": _get("Peers heard from in the last 10 minutes.", "Peers")},
        "/api/federation/settings": {
            "get": _get("The four federation switches and read-only facts.", "Settings"),
            "post": {
                "summary": "Change switches (applied live where possible, persisted in DATA_DIR).",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SettingsChange")}},
                },
                "responses": {
                    "200": {
                        "description": "The new settings; restartRequired is false when applied live.",
                        "content": {"application/json": {"schema": _ref("SettingsApplied")}},
                    },
                    "400": _BAD,
                    "401": _UNAUTH,
                    "413": _error("Body over 16 KiB."),
                    "414": _URI_TOO_LONG,
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/api/federation/clear": {
            "post": {
                "summary": "Delete every received federation task and peer (right to erasure).",
                "security": bearer,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
                },
                "responses": {
                    "200": _ok("Cleared", "Counts deleted."),
                    "400": _BAD,
                    "401": _UNAUTH,
                    "413": _error("Body over 16 KiB."),
                    "414": _URI_TOO_LONG,
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/tasks": {
            "get": {
                **_get(
                    "This node's tasks, newest first; private fields only with the token.",
                    "LocalTasks",
                    [
                        _q("limit", limit, "How many tasks (1-1000, default 100)."),
                        _q(
                            "offset",
                            {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                            "Skip this many.",
                        ),
                        _q("status", {"type": "string", "enum": list(TASK_STATUSES)}, "Only this status."),
                    ],
                    **{"401": _UNAUTH},
                ),
                "security": [{}, {"bearer": []}],
            }
        },
        "/api/stats": {"get": _get("This node's task counters.", "LocalStats")},
        "/api/compare": {
            "get": _get(
                "Me vs network: this node's figures against the federation's, with a verdict "
                "(docs/compare.md).",
                "Compare",
                [
                    _q(
                        "chainId",
                        {"type": "integer", "minimum": 0, "maximum": MAX_CHAIN_ID},
                        "Only this chain (default: every chain seen).",
                    ),
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
                ],
            )
        },
        "/api/privacy": {
            "get": _get("Last outgoing messages exactly as sent, and what is never shared.", "Privacy")
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TrueBit monitor agent API",
            "version": __version__,
            "description": "Local API of monitor-agent (docs/PROTOCOL.md §6). Write endpoints and private "
            "data need `Authorization: Bearer $MONITOR_API_TOKEN`. Live events: WebSocket at /ws.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_document() -> dict[str, Any]:
    """A fresh copy (callers may not mutate the cached one)."""
    return copy.deepcopy(_document())
