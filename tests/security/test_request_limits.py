"""Request size limits enforced by the real servers, whatever the framing (attack: a chunked body
over the 16 KiB limit used to be cut to the limit and accepted; headers without end)."""

from __future__ import annotations

import socket

import pytest

MAX_BODY_BYTES = 16 * 1024  # PROTOCOL.md section 6


@pytest.fixture(scope="module")
def agent(agent_process_factory):
    return agent_process_factory()


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` whole, read the answer until the server closes (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def settings_post(token: str, body_headers: bytes, body: bytes) -> bytes:
    return (
        b"POST /api/federation/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n" + body_headers + b"\r\n" + body
    )


def chunked(payload: bytes, size: int = 4096) -> bytes:
    out = b""
    for i in range(0, len(payload), size):
        part = payload[i : i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_refused_with_413(agent):
    # A JSON object whose first 16 KiB would parse as valid settings if the body were cut.
    body = b'{"broadcastTasks": false}' + b" " * (MAX_BODY_BYTES + 100)
    answer = exchange(
        agent.port, settings_post(agent.token, b"Transfer-Encoding: chunked\r\n", chunked(body))
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"payload_too_large"' in answer
    # Nothing was applied.
    ok = exchange(
        agent.port, b"GET /api/federation/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert b'"broadcastTasks":true' in ok, ok


@pytest.mark.slow
def test_chunked_body_within_the_limit_is_served(agent):
    body = b'{"broadcastStats": true}'
    answer = exchange(agent.port, settings_post(agent.token, b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                                chunked(body, 5)))  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


@pytest.mark.slow
def test_declared_length_over_the_limit_is_refused_before_the_body(agent):
    answer = exchange(agent.port, settings_post(agent.token, b"Content-Length: 10000000\r\n", b"{"))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]


@pytest.mark.slow
def test_endless_headers_are_refused_with_431(agent):
    head = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Filler: " + b"a" * 8000 + b"\r\n"
    answer = exchange(agent.port, head * 1 + (b"X-More: " + b"b" * 4000 + b"\r\n") * 10)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:300]
