"""The last line of defence: block an outgoing message if any value looks identifying.

`check(message) -> Finding | None` inspects every key and string value of an outgoing
message (after the allow-list anonymizer built it) and names the first field that looks like
a 0x-address or hash, a bare 64-hex key or hash, a UUID, an IPv4/IPv6 address, an e-mail or a
host name. Patterns are anchored on whole tokens, so a version like "0.1.0", a timestamp,
a `global-task-<12 hex>` taskId or a `node-<10 hex>` nodeId is not a false positive (the
existing monitor blocked 32-byte block hashes as "wallets" by matching substrings).

A finding names the field and the kind, never the value: it is logged and counted (FED_003)
and must not leak what it caught.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

# Characters that may be part of one token; a match must not touch any of them on either side.
_T = r"A-Za-z0-9_.:@%+\-"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a 0x address or hash", re.compile(r"(?<![A-Za-z0-9])0[xX][0-9a-fA-F]{8,}(?![A-Za-z0-9])")),
    ("a hex key or hash", re.compile(r"(?<![A-Za-z0-9])[0-9a-fA-F]{32,}(?![A-Za-z0-9])")),
    (
        "a UUID",
        re.compile(
            r"(?<![A-Za-z0-9])[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}(?![A-Za-z0-9])"
        ),
    ),
    (
        "an e-mail address",
        re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
    ),
    (
        "an IPv4 address",
        re.compile(r"(?<![0-9.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![0-9])"),
    ),
    (
        "a host name",
        # Two or more labels ending in an alphabetic TLD-like label: "node1.example.com", "seed.lan".
        re.compile(
            rf"(?<![{_T}])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z\-]{{1,62}}(?![A-Za-z0-9\-])\.?"
        ),
    ),
)
# Candidate IPv6 tokens (validated by ipaddress, so "10:30:00" in a timestamp is not one).
_IPV6_CANDIDATE = re.compile(r"(?<![A-Za-z0-9:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.%A-Za-z]*")


@dataclass(frozen=True, slots=True)
class Finding:
    field: str
    kind: str

    def __str__(self) -> str:
        return f"field {self.field!r} looks like {self.kind}"


def scan_text(text: str) -> str | None:
    """The kind of identifying data `text` contains, or None."""
    for kind, pattern in _PATTERNS:
        if pattern.search(text):
            return kind
    if ":" in text:
        for candidate in _IPV6_CANDIDATE.findall(text):
            token = candidate.strip(".")
            if token.count(":") >= 2 and _is_ipv6(token):
                return "an IPv6 address"
    return None


def _is_ipv6(token: str) -> bool:
    try:
        ipaddress.IPv6Address(token.split("%", 1)[0])
        return True
    except ValueError:
        return False


def check(message: Any, path: str = "") -> Finding | None:
    """The first key or string value of `message` (nested dicts/lists too) that looks identifying."""
    if isinstance(message, dict):
        for key, value in message.items():
            where = f"{path}.{key}" if path else str(key)
            kind = scan_text(str(key))
            if kind:
                return Finding(where, kind)
            found = check(value, where)
            if found:
                return found
        return None
    if isinstance(message, list | tuple):
        for i, value in enumerate(message):
            found = check(value, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(message, str):
        kind = scan_text(message)
        return Finding(path or "<value>", kind) if kind else None
    return None


def check_payload(payload: bytes) -> str | None:
    """Scan the exact serialized bytes too (belt and braces): the kind found, or None."""
    return scan_text(payload.decode("utf-8", errors="replace"))
