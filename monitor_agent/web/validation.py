"""Request validation for the HTTP API: pure functions, no Flask.

Every problem raises `BadRequest` whose message names the parameter, the value and what is
allowed, so the operator can fix a script from the answer alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from ..config import SWITCHES
from ..model import TASK_STATUSES
from ..protocol import TASK_TYPE_RE

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1
# SQLite integers are signed 64-bit; a larger value would raise OverflowError deep in the driver.
MAX_CHAIN_ID = 2**63 - 1
MAX_QUERY_BYTES = 2048
MAX_BODY_BYTES = 16 * 1024

# ASCII-only patterns, used with fullmatch (so "5\n" or Arabic-Indic digits never pass).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")


class BadRequest(ValueError):
    """A request the API refuses with 400; the message names what was wrong."""


@dataclass(frozen=True, slots=True)
class GlobalTasksQuery:
    limit: int
    chain_id: int | None
    since: datetime | None


@dataclass(frozen=True, slots=True)
class CompareQuery:
    chain_id: int | None
    task_type: str | None
    window: str


@dataclass(frozen=True, slots=True)
class LocalTasksQuery:
    limit: int
    offset: int
    status: str | None


def _show(value: str, width: int = 40) -> str:
    """The offending value, quoted and shortened so an error line stays one line."""
    text = value if len(value) <= width else value[: width - 1] + "…"
    return json.dumps(text)


def check_params(args: Mapping[str, list[str]], allowed: tuple[str, ...]) -> dict[str, str]:
    """One value per known parameter; unknown or repeated parameters are refused."""
    unknown = sorted(k for k in args if k not in allowed)
    if unknown:
        expected = ", ".join(allowed) if allowed else "no query parameters"
        raise BadRequest(f"unknown query parameter {_show(unknown[0])}: expected {expected}")
    out: dict[str, str] = {}
    for key, values in args.items():
        if len(values) > 1:
            raise BadRequest(f"query parameter {key} given {len(values)} times: give it once")
        out[key] = values[0]
    return out


@overload
def parse_int(name: str, raw: str | None, lo: int, hi: int, default: int) -> int: ...
@overload
def parse_int(name: str, raw: str | None, lo: int, hi: int, default: None = None) -> int | None: ...
def parse_int(name: str, raw: str | None, lo: int, hi: int, default: int | None = None) -> int | None:
    """An integer parameter in lo..hi (decimal digits only, no sign, no spaces)."""
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or len(raw) > 20:
        raise BadRequest(f"{name}={_show(raw)} is not valid: expected an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name}={_show(raw)} is out of range: expected an integer from {lo} to {hi}")
    return value


def parse_timestamp(name: str, raw: str | None) -> datetime | None:
    """An RFC 3339 timestamp (or a plain YYYY-MM-DD date, read as midnight UTC), as aware UTC."""
    if raw is None:
        return None
    expected = "an RFC 3339 time like 2024-01-15T10:30:00Z"
    m = _RFC3339.fullmatch(raw)
    try:
        if m:
            stamp = raw.replace("z", "Z").replace("t", "T").replace(" ", "T")
            value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        elif _DATE.fullmatch(raw):
            value = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        else:
            raise BadRequest(f"{name}={_show(raw)} is not valid: expected {expected}")
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest(f"{name}={_show(raw)} is not a real date or time: expected {expected}") from None


def parse_global_tasks(args: Mapping[str, list[str]]) -> GlobalTasksQuery:
    p = check_params(args, ("limit", "chainId", "since"))
    return GlobalTasksQuery(
        limit=parse_int("limit", p.get("limit"), 1, MAX_LIMIT, DEFAULT_LIMIT),
        chain_id=parse_int("chainId", p.get("chainId"), 0, MAX_CHAIN_ID),
        since=parse_timestamp("since", p.get("since")),
    )


COMPARE_WINDOWS = ("1h", "24h")


def parse_compare(args: Mapping[str, list[str]]) -> CompareQuery:
    p = check_params(args, ("chainId", "taskType", "window"))
    window = p.get("window", "1h")
    if window not in COMPARE_WINDOWS:
        raise BadRequest(f"window={_show(window)} is not valid: expected one of {', '.join(COMPARE_WINDOWS)}")
    task_type = p.get("taskType")
    if task_type is not None and not TASK_TYPE_RE.fullmatch(task_type):
        raise BadRequest(
            f"taskType={_show(task_type)} is not valid: expected 1-32 characters from a-z, 0-9, _ and -"
        )
    return CompareQuery(
        chain_id=parse_int("chainId", p.get("chainId"), 0, MAX_CHAIN_ID),
        task_type=task_type,
        window=window,
    )


def parse_local_tasks(args: Mapping[str, list[str]]) -> LocalTasksQuery:
    p = check_params(args, ("limit", "offset", "status"))
    status = p.get("status")
    if status is not None and status not in TASK_STATUSES:
        raise BadRequest(f"status={_show(status)} is not valid: expected one of {', '.join(TASK_STATUSES)}")
    return LocalTasksQuery(
        limit=parse_int("limit", p.get("limit"), 1, MAX_LIMIT, DEFAULT_LIMIT),
        offset=parse_int("offset", p.get("offset"), 0, MAX_OFFSET, 0),
        status=status,
    )


def parse_json_object(body: bytes, content_type: str | None, *, allow_empty: bool) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}` when allowed."""
    if not body.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body is empty: expected a JSON object")
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != "application/json":
        raise BadRequest(f"Content-Type {_show(mime or '(none)')} is not accepted: send application/json")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(data).__name__}")
    return data


def parse_settings(data: Mapping[str, Any]) -> dict[str, bool]:
    """The switch changes of POST /api/federation/settings: a non-empty subset, booleans only."""
    allowed = tuple(SWITCHES)
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise BadRequest(f"unknown field {_show(unknown[0])}: expected any of {', '.join(allowed)}")
    if not data:
        raise BadRequest(f"no settings given: expected any of {', '.join(allowed)}")
    for key, value in data.items():
        if not isinstance(value, bool):
            raise BadRequest(f"{key} must be true or false (a JSON boolean), not {json.dumps(value)[:40]}")
    return dict(data)


def parse_empty_object(data: Mapping[str, Any]) -> None:
    """For action endpoints that take no fields."""
    if data:
        raise BadRequest(f"unknown field {_show(sorted(data)[0])}: this endpoint takes no fields")


