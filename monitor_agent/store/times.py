"""How the store keeps time: integer epoch milliseconds (UTC) in every column."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from ..timestamps import rfc3339

DAY_MS = 86_400_000
MINUTE_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(value: datetime | str | int | float | None) -> int | None:
    """Epoch ms of a datetime (naive = UTC), RFC 3339 string, or epoch seconds number."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return to_ms(datetime.fromisoformat(text))


def iso(ms: int | None) -> str | None:
    """RFC 3339 UTC, whole seconds, with a Z (the protocol's one form: timestamps.rfc3339)."""
    return None if ms is None else rfc3339(ms / 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
