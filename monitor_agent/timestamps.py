"""The protocol's timestamp form, written in one place: RFC 3339, UTC, whole seconds, a `Z`
(`2026-12-02T03:50:00Z`, PROTOCOL.md). Both packages format through `rfc3339`."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(at: datetime | float | None = None) -> str:
    """`at` as the protocol's timestamp: an aware datetime (a naive one is taken as UTC), epoch
    seconds, or None for now."""
    if at is None:
        at = datetime.now(UTC)
    elif not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, UTC)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime(FORMAT)
