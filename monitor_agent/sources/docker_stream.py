"""Pure decoders of what the Docker Engine API sends: HTTP chunked bodies, the 8-byte multiplexed
log frames, and log lines with their `timestamps=1` prefix. No I/O here."""

from __future__ import annotations

import calendar
import re
import struct
import time

STDIN, STDOUT, STDERR = 0, 1, 2
FRAME_HEADER = struct.Struct(">BxxxI")  # stream type, 3 zero bytes, big-endian payload length
MAX_LINE = 1024 * 1024
_TS_RE = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


class ProtocolError(ValueError):
    """The daemon's answer does not have the shape the Engine API documents."""


class ChunkedDecoder:
    """Incremental decoder of an HTTP/1.1 `Transfer-Encoding: chunked` body."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # bytes of chunk data still to come
        self._need_crlf = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out = bytearray()
        i = 0
        while not self.done:
            if self._left:
                take = min(self._left, len(buf) - i)
                out += buf[i : i + take]
                i += take
                self._left -= take
                if self._left:
                    break
                self._need_crlf = True
            if self._need_crlf:
                if len(buf) - i < 2:
                    break
                if buf[i : i + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                i += 2
                self._need_crlf = False
            end = buf.find(b"\r\n", i)
            if end < 0:
                if len(buf) - i > 1024:
                    raise ProtocolError("chunk size line too long")
                break
            size_text = buf[i:end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            i = end + 2
            if size == 0:
                self.done = True  # trailers (if any) are ignored
                break
            self._left = size
        self._buf = buf[i:]
        return bytes(out)


class Demuxer:
    """Splits a non-TTY log stream into (stream type, payload) frames."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        frames = []
        i = 0
        n = len(buf)
        while n - i >= 8:
            stream, size = FRAME_HEADER.unpack_from(buf, i)
            if stream > STDERR or buf[i + 1 : i + 4] != b"\0\0\0":
                raise ProtocolError(f"bad frame header {buf[i : i + 8]!r}")
            if n - i - 8 < size:
                break
            frames.append((stream, buf[i + 8 : i + 8 + size]))
            i += 8 + size
        self._buf = buf[i:]
        return frames


class LineSplitter:
    """Complete lines of one stream, each as (timestamp key or None, line without its prefix).

    With `timestamps=1` the daemon prefixes every message with an RFC 3339 nano timestamp; a
    message longer than 16 KiB comes in several frames, each with its own prefix, and only the
    last ends with a newline — those inner prefixes are removed so the line is whole again.
    """

    def __init__(self, timestamps: bool = True) -> None:
        self.timestamps = timestamps
        self._parts: list[bytes] = []
        self._size = 0
        self._ts: str | None = None

    def feed(self, payload: bytes) -> list[tuple[str | None, bytes]]:
        out = []
        pos = 0
        n = len(payload)
        while pos < n:
            # A message starts here unless this frame continues a partial (>16 KiB) message; such
            # a frame still begins with its own timestamp, which is dropped.
            if self.timestamps and (not self._parts or pos == 0):
                m = _TS_RE.match(payload, pos)
                if m is not None:
                    if not self._parts:
                        self._ts = ts_key(m)
                    pos = m.end()
            nl = payload.find(b"\n", pos)
            if nl < 0:
                piece = payload[pos:]
                self._parts.append(piece)
                self._size += len(piece)
                if self._size > MAX_LINE:  # never buffer without bound: cut here
                    out.append((self._ts, b"".join(self._parts)))
                    self._parts, self._size = [], 0
                break
            piece = payload[pos:nl]
            line = b"".join((*self._parts, piece)) if self._parts else piece
            self._parts, self._size = [], 0
            out.append((self._ts, line))
            pos = nl + 1
        return out

    def pending(self) -> bool:
        return bool(self._parts)


def ts_key(m: re.Match) -> str:
    """A sortable UTC key `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` from a timestamp match."""
    y, mo, d, h, mi, s, frac, zone = m.groups()
    frac = (frac or b"").ljust(9, b"0")
    if zone != b"Z":
        # Docker always writes UTC; convert an offset anyway rather than mis-order lines.
        sign = 1 if zone[:1] == b"+" else -1
        secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s))) - sign * (
            int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        )
        t = time.gmtime(secs)
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac.decode()}Z"
    return f"{y.decode()}-{mo.decode()}-{d.decode()}T{h.decode()}:{mi.decode()}:{s.decode()}.{frac.decode()}Z"


def since_param(key: str) -> str:
    """Docker's `since` (UNIX seconds with nanoseconds) for a timestamp key."""
    secs = calendar.timegm(
        (int(key[0:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), int(key[14:16]), int(key[17:19]))
    )
    return f"{secs}.{key[20:29]}"
