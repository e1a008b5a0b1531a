"""A Docker Engine API stand-in on a unix socket — the one stand-in the project allows (this
machine has no Docker engine). It speaks what the agent relies on, as the daemon does:

- `GET /containers/{name or id}/json`: the inspect document (`Id`, `Name`, `State.Running`,
  `Config.Tty`), 404 `{"message": "No such container: …"}` otherwise;
- `GET /containers/{id}/logs?follow=&stdout=&stderr=&timestamps=&since=`: HTTP/1.1 chunked
  body, `Content-Type: application/vnd.docker.multiplexed-stream` without a TTY, each message
  in its own 8-byte-header frame (stream type, 3 zero bytes, big-endian length), prefixed with
  an RFC 3339 fixed-nanosecond timestamp and a space; `since` (UNIX seconds.nanoseconds) is
  inclusive; with `follow=1` the stream stays open until the container stops;
- anything else: 404 (and recorded, so tests can assert the agent only ever reads).
"""

from __future__ import annotations

import json
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


def docker_ts(ns: int) -> str:
    """RFC 3339 with fixed nanoseconds, as the daemon writes (`2024-01-15T10:30:00.000000001Z`)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@dataclass
class Container:
    name: str
    id: str
    tty: bool = False
    running: bool = True
    logs: list[tuple[int, int, bytes, int]] = field(default_factory=list)  # (ns, stream, message, generation)
    generation: int = 0  # bumped by every stop/restart: open log streams end


class DockerEngine:
    """The stand-in daemon. Drive it from tests: `write`, `restart`, `stop`, `start`."""

    def __init__(self, path: Path):
        self.path = path
        self.containers: dict[str, Container] = {}
        self.requests: list[tuple[str, str]] = []
        self.cond = threading.Condition()
        self._clock = time.time_ns()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def address_string(self):  # unix sockets have no peer address
                return "unix"

            def do_GET(self):
                engine._get(self)

            def _refuse(self):
                engine.requests.append((self.command, self.path))
                engine._json(self, 404, {"message": "page not found"})

            do_POST = do_PUT = do_DELETE = do_HEAD = _refuse

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(str(path), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    # ---- test controls ----

    def add(self, name: str, *, tty: bool = False, running: bool = True) -> Container:
        cid = (name.encode().hex() * 8)[:64]
        with self.cond:
            c = self.containers[name] = Container(name, cid, tty=tty, running=running)
        return c

    def now_ns(self) -> int:
        """A strictly increasing clock (two lines never share a timestamp unless a test asks)."""
        with self.cond:
            self._clock = max(self._clock + 1000, time.time_ns())
            return self._clock

    def write(self, name: str, text: str | bytes, *, stream: int = 1, ns: int | None = None) -> None:
        """The container prints `text` (one message per line)."""
        data = text.encode() if isinstance(text, str) else text
        lines = data.splitlines(keepends=True)
        with self.cond:
            c = self.containers[name]
            for line in lines:
                c.logs.append((ns if ns is not None else self.now_ns(), stream, line, c.generation))
            self.cond.notify_all()

    def stop(self, name: str) -> None:
        with self.cond:
            c = self.containers[name]
            c.running = False
            c.generation += 1
            self.cond.notify_all()

    def start(self, name: str) -> None:
        with self.cond:
            self.containers[name].running = True
            self.cond.notify_all()

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    # ---- the API ----

    def _find(self, ref: str) -> Container | None:
        ref = ref.lstrip("/")
        with self.cond:
            for c in self.containers.values():
                if ref in (c.name, c.id) or (len(ref) >= 12 and c.id.startswith(ref)):
                    return c
        return None

    def _json(self, h: BaseHTTPRequestHandler, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Api-Version", "1.43")
        h.end_headers()
        h.wfile.write(body)

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append(("GET", h.path))
        url = urlsplit(h.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts and parts[0].startswith("v1."):
            parts = parts[1:]
        if len(parts) == 3 and parts[0] == "containers":
            c = self._find(parts[1])
            if c is None:
                self._json(h, 404, {"message": f"No such container: {parts[1]}"})
                return
            if parts[2] == "json":
                self._json(h, 200, {
                    "Id": c.id, "Name": "/" + c.name,
                    "State": {"Status": "running" if c.running else "exited", "Running": c.running},
                    "Config": {"Tty": c.tty, "Image": "truebit/worker-runner-node"},
                })  # fmt: skip
                return
            if parts[2] == "logs":
                self._logs(h, c, parse_qs(url.query))
                return
        self._json(h, 404, {"message": "page not found"})

    def _logs(self, h: BaseHTTPRequestHandler, c: Container, q: dict) -> None:
        def flag(name: str) -> bool:
            return q.get(name, ["0"])[0] in ("1", "true", "True")

        if not (flag("stdout") or flag("stderr")):
            self._json(h, 400, {"message": "Bad parameters: you must choose at least one stream"})
            return
        since_ns = 0
        if "since" in q:
            secs, _, frac = q["since"][0].partition(".")
            since_ns = int(secs) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
        streams = {1} if flag("stdout") else set()
        if flag("stderr"):
            streams.add(2)
        h.send_response(200)
        h.send_header(
            "Content-Type",
            "application/vnd.docker.raw-stream" if c.tty else "application/vnd.docker.multiplexed-stream",
        )
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Api-Version", "1.43")
        h.end_headers()
        sent = 0
        with self.cond:
            generation = c.generation
        try:
            while True:
                with self.cond:
                    batch = [x for x in c.logs[sent:] if x[3] <= generation]
                    sent += len(batch)
                # Lines the next run of the container prints never appear on this stream.
                for ns, stream, msg, _gen in batch:
                    if ns < since_ns or stream not in streams:
                        continue
                    payload = (docker_ts(ns) + " ").encode() + msg if flag("timestamps") else msg
                    frame = payload if c.tty else struct.pack(">BxxxI", stream, len(payload)) + payload
                    h.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
                h.wfile.flush()
                with self.cond:
                    if not flag("follow") or not c.running or c.generation != generation:
                        break
                    if len(c.logs) == sent:
                        self.cond.wait(0.5)
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True

    def serve(self) -> DockerEngine:
        self.thread.start()
        return self

    def close(self) -> None:
        with self.cond:
            for c in self.containers.values():
                c.running = False
                c.generation += 1
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def docker_engine(tmp_path_factory):
    """A running Docker Engine API stand-in; its socket path is `engine.path`."""
    # AF_UNIX paths are limited to ~107 bytes: keep it short.
    folder = tmp_path_factory.mktemp("dk")
    engine = DockerEngine(folder / "docker.sock").serve()
    try:
        yield engine
    finally:
        engine.close()
