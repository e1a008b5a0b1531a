"""Query parameters of the console's routes: each route says which it takes and how to read them.

A bad value, an unknown parameter or one given twice is a 400 whose message names it (HTML
page or JSON, by the app's error handler), never a 500 and never silently replaced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import abort, request

_DIGITS = re.compile(r"[0-9]{1,10}")
_NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")
_SPAN = re.compile(r"([0-9]{1,10})([smhd])")
_SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def query(**readers: Callable[[str, str], Any]) -> dict[str, Any]:
    """The route's query parameters read by `readers` (name -> reader(name, raw)); absent ones
    are left out. Anything else in the query string is a 400 naming it."""
    out: dict[str, Any] = {}
    for name in request.args:
        if name not in readers:
            allowed = ", ".join(sorted(readers)) or "none"
            abort(400, description=f"unknown parameter {name[:64]!r} (this page takes: {allowed})")
        values = request.args.getlist(name)
        if len(values) > 1:
            abort(400, description=f"parameter {name!r} is given {len(values)} times: give it once")
        try:
            out[name] = readers[name](name, values[0])
        except ValueError as exc:
            abort(400, description=str(exc))
    return out


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


def flag(name: str, raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError(f"{name}={_shown(raw)} must be 0 or 1")
    return raw == "1"


def choice(*allowed: str) -> Callable[[str, str], str]:
    def read(name: str, raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"{name}={_shown(raw)} is not one of {', '.join(allowed)}")
        return raw

    return read


def count(limit: int) -> Callable[[str, str], int]:
    """A whole number 0..limit-1 in ASCII digits (not '²', not '٣', not '1e3')."""

    def read(name: str, raw: str) -> int:
        if not _DIGITS.fullmatch(raw) or int(raw) >= limit:
            raise ValueError(f"{name}={_shown(raw)} must be a whole number from 0 to {limit - 1}")
        return int(raw)

    return read


def text(max_len: int) -> Callable[[str, str], str]:
    def read(name: str, raw: str) -> str:
        if len(raw) > max_len:
            raise ValueError(f"{name} is too long: at most {max_len} characters")
        return raw

    return read


def since(name: str, raw: str) -> str:
    """Checked here, turned into a time by `parse_since` (which needs `now`)."""
    parse_since(raw, 0.0, name)
    return raw


def parse_since(raw: str | None, now: float, name: str = "since") -> float:
    """`since` as unix seconds, RFC 3339, or a span back from now (`90s`, `15m`, `1h`, `7d`)."""
    if raw is None or raw == "":
        return now - 3600
    value = raw.strip()
    span = _SPAN.fullmatch(value)
    if span:
        return now - min(int(span.group(1)) * _SPAN_UNITS[span.group(2)], 100 * 366 * 86400)
    if _NUMBER.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    if len(value) <= 40:
        try:
            return datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    raise ValueError(f"{name}={_shown(raw)} is not a unix time, an RFC 3339 time or a span like 15m, 1h, 7d")
