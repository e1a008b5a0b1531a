"""Helpers for the health tests: real little HTTP servers that are *not* nats-server."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.plugins.tools import QuietHandler, http_server


class _Handler(QuietHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        kind = self.server.kind
        if kind == "html":
            body, ctype, code = b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html", 200
        elif kind == "garbage-json":
            body, ctype, code = b'{"server_id": "X", "connections": ', "application/json", 200
        elif kind == "json-list":
            body, ctype, code = b"[1, 2, 3]", "application/json", 200
        elif kind == "not-nats":
            body, ctype, code = b'{"hello": "world"}', "application/json", 200
        else:  # "404"
            body, ctype, code = b"404 page not found\n", "text/plain", 404
        self.answer(code, body, ctype)


@pytest.fixture
def odd_http_server():
    """make(kind) -> port of a real HTTP server on loopback answering like something else than nats."""
    with contextlib.ExitStack() as stack:

        def make(kind: str) -> int:
            return stack.enter_context(http_server(_Handler, kind=kind)).server_address[1]

        yield make


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (kernel backlog) but never answers: requests time out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()
