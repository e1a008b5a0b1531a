"""JSON answers and the API's one error shape: `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any

import msgspec
from flask import Response

from .shapes import Error, ErrorDetail

_encoder = msgspec.json.Encoder()

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    426: "upgrade_required",
    500: "internal_error",
    503: "unavailable",
}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded with msgspec (several times faster than the stdlib on row lists)."""
    resp = Response(_encoder.encode(payload), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    if headers:
        resp.headers.update(headers)
    return resp


def raw_json_response(text: str | bytes, status: int = 200) -> Response:
    """A response whose JSON was already built (by SQLite for the global feed, once per compare refresh)."""
    resp = Response(text, status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    code = ERROR_CODES.get(status, "error")
    return json_response(Error(ErrorDetail(code, message)), status, headers)  # type: ignore[arg-type]
