"""Forgiving extraction of typed values from the node's JSON (shapes vary between node versions)."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from ..protocol import TASK_TYPE_RE

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# `js_<64 hex>`, `rs_<...>`, `api_<...>`: the prefix is the task type.
TASK_ID_RE = re.compile(r"\b([a-z][a-z0-9]{0,15})_(?:0x)?[0-9a-fA-F]{16,}\b")
WALLET_RE = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")

_decode = msgspec.json.decode
_raw_decoder = json.JSONDecoder()
# Where a task's fields may sit: top level, or under one of these (nested at most twice).
_NESTS = ("task", "message", "payload", "data", "event")
_TYPE_OF: dict[str, str | None] = {}  # task id prefix -> task type (few distinct prefixes)


def decode_json_object(text: str) -> dict | None:
    """The JSON object at the start of `text` (trailing text allowed), or None if it is not one."""
    try:
        obj = _decode(text)
    except msgspec.DecodeError:
        try:
            obj, _ = _raw_decoder.raw_decode(text)
        except ValueError:
            return None
    except RecursionError:  # pathological nesting is just invalid input here
        return None
    return obj if isinstance(obj, dict) else None


def find(obj: dict, *keys: str) -> Any:
    """The first of `keys` found at the top level of `obj` or in its usual nested objects."""
    for key in keys:
        if key in obj:
            return obj[key]
    for nest in _NESTS:
        sub = obj.get(nest)
        if isinstance(sub, dict):
            for key in keys:
                if key in sub:
                    return sub[key]
            for nest2 in _NESTS:
                sub2 = sub.get(nest2)
                if isinstance(sub2, dict):
                    for key in keys:
                        if key in sub2:
                            return sub2[key]
    return None


def nest_dotted(obj: dict) -> dict:
    """`{"wasi.exitCode": 0}` as `{"wasi": {"exitCode": 0}}` (nested keys win over flat ones)."""
    out: dict = {}
    for key, value in obj.items():
        if type(key) is not str or "." not in key:
            out.setdefault(key, value)
            continue
        parts = key.split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.get(part)
            if type(nxt) is not dict:
                nxt = cur[part] = {}
            cur = nxt
        cur.setdefault(parts[-1], value)
    return out


def as_int(value: Any) -> int | None:
    """An int from an int, a decimal or 0x-hex string, or an integral float; else None."""
    if type(value) is int:
        return value
    if type(value) is str:  # the node writes big figures as strings: the next most common case
        return _int_of_text(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        return _int_of_text(value)
    return None


def _int_of_text(value: str) -> int | None:
    s = value.strip()
    try:
        if s[:2] in ("0x", "0X"):
            return int(s, 16)
        return int(s, 10)
    except ValueError:
        return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def task_type_of(task_id: Any) -> str | None:
    """`js` from `js_<hex>`; None when the id has no recognisable type prefix."""
    if not isinstance(task_id, str):
        return None
    head, sep, _ = task_id.partition("_")
    if not sep:
        return None
    try:
        return _TYPE_OF[head]
    except KeyError:
        pass
    lower = head.lower()
    kind = lower if TASK_TYPE_RE.match(lower) else None
    if len(_TYPE_OF) > 256:
        _TYPE_OF.clear()
    _TYPE_OF[head] = kind
    return kind


def short_text(value: Any, limit: int = 4096) -> Any:
    """Strings capped to `limit` characters (private fields stay bounded in the database)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value
