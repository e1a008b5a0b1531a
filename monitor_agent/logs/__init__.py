"""Pure parser of TrueBit runner-node logs (no I/O): lines in, `TaskEvent`s and local records out."""

from .parser import HEADER_RE, MAX_LINE_CHARS, LogParser, parse_lines
from .records import Invoice, LogEntry, ParseStats, SlotUsage

__all__ = [
    "HEADER_RE",
    "MAX_LINE_CHARS",
    "Invoice",
    "LogEntry",
    "LogParser",
    "ParseStats",
    "SlotUsage",
    "parse_lines",
]
