"""monitor_agent.timestamps.rfc3339: the protocol's one timestamp form, for every caller's input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from monitor_agent.timestamps import rfc3339


def test_every_input_form_gives_the_protocol_form():
    aware = datetime(2026, 12, 2, 3, 50, 7, 999_000, tzinfo=UTC)
    assert rfc3339(aware) == "2026-12-02T03:50:07Z"  # whole seconds, Z
    assert rfc3339(aware.astimezone(timezone(timedelta(hours=5, minutes=30)))) == "2026-12-02T03:50:07Z"
    assert rfc3339(aware.replace(tzinfo=None)) == "2026-12-02T03:50:07Z"  # naive is UTC, not local
    assert rfc3339(aware.timestamp()) == "2026-12-02T03:50:07Z"  # epoch seconds (float)
    assert rfc3339(int(aware.timestamp())) == "2026-12-02T03:50:07Z"
    now = datetime.fromisoformat(rfc3339().replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5
