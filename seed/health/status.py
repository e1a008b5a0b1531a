"""Check outcomes with Nagios semantics: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Status(enum.IntEnum):
    """A check's verdict; the value is the Nagios plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        """Order for 'worst of': OK < UNKNOWN < WARNING < CRITICAL (an unknown is not yet a fire)."""
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status, OK for none."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


def exit_code(statuses: Iterable[Status]) -> int:
    """Nagios exit code for a whole run: CRITICAL beats WARNING beats UNKNOWN beats OK."""
    return int(worst(statuses))


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of one server: verdict, a one-line reason, and the figure it was judged on."""

    name: str
    status: Status
    reason: str
    value: float | int | str | None = None

    def to_dict(self) -> dict:
        return {"check": self.name, "status": self.status.name, "reason": self.reason, "value": self.value}
