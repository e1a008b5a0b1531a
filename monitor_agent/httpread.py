"""Where an HTTP/1.1 request ends, from the bytes received so far (pure, no I/O, no gunicorn).

The servers of the agent and of the console read every request to its end in their event loop
before a thread serves it (`monitor_agent.http_worker`), so a client that sends slowly holds
no thread. This module answers the one question that needs: given the bytes so far, is the
request complete, still incomplete, or to be refused before any thread sees it?

It only finds the frame; validating the request (request line, header syntax, smuggling rules)
stays gunicorn's parser's job, which answers 400 for anything malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BODY_BYTES = 16 * 1024  # request bodies of the agent's API and of the console (413 above)
MAX_HEAD_BYTES = 32 * 1024  # request line + headers (431 above); gunicorn's own limits are lower per line
READ_TIMEOUT_S = 10.0  # a whole request (head and body) must arrive within this (408 after)

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_MAX_CHUNK_LINE = 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True, slots=True)
class Frame:
    """What to do with the bytes received so far.

    state: "incomplete" (wait for more), "complete" (serve: the request is `buf[:end]`),
    "dispatch" (hand over as is: malformed framing that gunicorn's parser answers with 400),
    or "refuse" (answer `status` without serving).
    expects_continue: the client waits for "100 Continue" before sending its body.
    """

    state: str
    end: int = 0
    status: int = 0
    expects_continue: bool = False


INCOMPLETE = Frame("incomplete")
DISPATCH = Frame("dispatch")


def frame(buf: bytes | bytearray, max_body: int = MAX_BODY_BYTES, max_head: int = MAX_HEAD_BYTES) -> Frame:
    """Where the first request in `buf` ends (see `Frame`)."""
    head_end = buf.find(_HEAD_END, 0, max_head + len(_HEAD_END))
    if head_end < 0:
        if len(buf) > max_head:
            return Frame("refuse", status=431)
        return INCOMPLETE
    body_start = head_end + len(_HEAD_END)
    headers = _framing_headers(bytes(buf[:head_end]))
    if headers is None:
        return DISPATCH
    lengths, codings, expect = headers
    if codings:
        if lengths or codings[-1] != b"chunked":
            return DISPATCH  # gunicorn refuses both-headers (smuggling) and unknown codings with 400
        return _chunked(buf, body_start, max_body, expect)
    if not lengths:
        return Frame("complete", end=body_start)
    if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        return DISPATCH
    length = int(lengths[0])
    if length > max_body:
        return Frame("refuse", status=413)
    if len(buf) - body_start >= length:
        return Frame("complete", end=body_start + length)
    return Frame("incomplete", expects_continue=expect)


def _framing_headers(head: bytes) -> tuple[list[bytes], list[bytes], bool] | None:
    """Content-Length values, transfer codings (lowercase, in order), Expect: 100-continue."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expect = False
    for line in head.split(_CRLF)[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        name = name.lower()
        if name == b"content-length":
            lengths += [v.strip() for v in value.split(b",")]
        elif name == b"transfer-encoding":
            codings += [v.strip().lower() for v in value.split(b",") if v.strip()]
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"
    return lengths, codings, expect


def _chunked(buf: bytes | bytearray, pos: int, max_body: int, expect: bool) -> Frame:
    total = 0
    while True:
        line_end = buf.find(_CRLF, pos, pos + _MAX_CHUNK_LINE)
        if line_end < 0:
            if len(buf) - pos >= _MAX_CHUNK_LINE:
                return Frame("refuse", status=400)  # a chunk-size line that never ends
            return Frame("incomplete", expects_continue=expect)
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            return DISPATCH
        size = int(size_text, 16)
        total += size
        if total > max_body:
            return Frame("refuse", status=413)
        pos = line_end + len(_CRLF)
        if size == 0:  # last chunk, then optional trailer fields, then an empty line
            if buf[pos : pos + 2] == _CRLF:
                return Frame("complete", end=pos + 2)
            trailer_end = buf.find(_HEAD_END, pos)
            if trailer_end >= 0:
                return Frame("complete", end=trailer_end + len(_HEAD_END))
            if len(buf) - pos > MAX_HEAD_BYTES:
                return Frame("refuse", status=431)
            return INCOMPLETE
        pos += size + len(_CRLF)
        if pos > len(buf):
            return Frame("incomplete", expects_continue=expect)
        if buf[pos - 2 : pos] != _CRLF:
            return DISPATCH


def without_expect(head_and_rest: bytes, body_start: int) -> bytes:
    """The request with its Expect header removed (the server already sent 100 Continue)."""
    head = head_and_rest[:body_start]
    lines = [ln for ln in head.split(_CRLF) if not ln.lower().startswith(b"expect:")]
    return _CRLF.join(lines) + head_and_rest[body_start:]


REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}
MESSAGES = {
    400: "malformed chunked body: a chunk-size line longer than 1024 bytes",
    408: "the request did not arrive in time: send it whole, without pauses",
    413: f"request body too large: at most {MAX_BODY_BYTES} bytes",
    431: f"request line and headers too large: at most {MAX_HEAD_BYTES} bytes",
}
CODES = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large", 431: "headers_too_large"}


def refusal(status: int) -> bytes:
    """A complete HTTP/1.1 answer in the API's error shape; the connection closes after it."""
    body = b'{"error":{"code":"%s","message":"%s"}}' % (CODES[status].encode(), MESSAGES[status].encode())
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        % (status, REASONS[status].encode(), len(body))
    ) + body
