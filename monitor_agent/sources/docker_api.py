"""A minimal, read-only Docker Engine API client over the local unix socket.

Only two calls are made: `GET /containers/{name}/json` (find the container) and
`GET /containers/{id}/logs` (follow its output). Never `exec`, never anything that writes.
Written on a plain socket so that a quiet stream can be waited on with a short timeout and
stopped at once (an HTTP library would hold a blocking read).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from .docker_stream import ChunkedDecoder, ProtocolError

MAX_HEADER = 64 * 1024
MAX_JSON_BODY = 8 * 1024 * 1024


class DockerError(Exception):
    """The Docker daemon is unreachable or answered with an error."""


def socket_path(docker_host: str) -> str:
    """`/var/run/docker.sock` from `unix:///var/run/docker.sock` (config validated the scheme)."""
    return docker_host[len("unix://") :] if docker_host.startswith("unix://") else docker_host


class DockerClient:
    def __init__(self, path: str, *, timeout: float = 5.0, poll: float = 0.5):
        self.path = path
        self.timeout = timeout
        self.poll = poll

    def _open(
        self, target: str, timeout: float, stop: threading.Event | None = None
    ) -> tuple[socket.socket, int, dict[str, str], bytes]:
        """Send a GET and read the answer's head. With `stop`, wait for the head as long as it
        takes (until `stop` is set): podman's Engine API sends the head of a followed log only
        with the container's first output, so a silent container is not an unreachable daemon."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.path)
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: monitor-agent\r\n"
                "Accept: */*\r\n\r\n".encode()
            )
            if stop is not None:
                sock.settimeout(self.poll)
            buf = b""
            while b"\r\n\r\n" not in buf:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if stop is None:
                        raise
                    if stop.is_set():
                        raise DockerError("stopped while waiting for the Docker daemon") from None
                    continue
                if not data:
                    raise DockerError("the Docker daemon closed the connection before answering")
                buf += data
                if len(buf) > MAX_HEADER:
                    raise DockerError("the Docker daemon sent oversized headers")
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise DockerError(f"not an HTTP answer from {self.path}: {lines[0][:80]!r}")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            return sock, int(parts[1]), headers, rest
        except PermissionError as exc:
            sock.close()
            raise DockerError(permission_hint(self.path)) from exc
        except OSError as exc:
            sock.close()
            raise DockerError(f"cannot reach the Docker daemon at {self.path}: {exc}") from exc
        except BaseException:
            sock.close()
            raise

    def _body(self, sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        dec = ChunkedDecoder() if chunked else None
        out = bytearray(dec.feed(rest) if dec else rest)
        while True:
            if dec is not None and dec.done:
                break
            if dec is None and length is not None and len(out) >= int(length):
                break
            data = sock.recv(65536)
            if not data:
                break
            out += dec.feed(data) if dec else data
            if len(out) > MAX_JSON_BODY:
                raise DockerError("the Docker daemon's answer is too large")
        return bytes(out)

    def inspect(self, name: str) -> dict | None:
        """The container's inspect document, or None if no container has that name."""
        sock, status, headers, rest = self._open(f"/containers/{quote(name, safe='')}/json", self.timeout)
        with sock:
            try:
                body = self._body(sock, headers, rest)
            except (OSError, ProtocolError) as exc:
                raise DockerError(f"reading the container description failed: {exc}") from exc
        if status == 404:
            return None
        if status != 200:
            raise DockerError(f"inspecting container {name!r}: HTTP {status}: {_message(body)}")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise DockerError(f"inspecting container {name!r}: invalid JSON") from exc
        if not isinstance(doc, dict):
            raise DockerError(f"inspecting container {name!r}: unexpected answer")
        return doc

    def logs(
        self, container_id: str, since: str | None, stop: threading.Event
    ) -> Iterator[tuple[str, bytes]]:
        """Follow the container's output: yields (content type, body bytes) until the stream ends.

        Yields an empty body every `poll` seconds of silence (so the caller can act on idleness).
        The stream ends when the container stops (or restarts); `stop` ends it from outside.
        """
        query = {"follow": "1", "stdout": "1", "stderr": "1", "timestamps": "1"}
        if since:
            query["since"] = since
        target = f"/containers/{quote(container_id, safe='')}/logs?{urlencode(query)}"
        sock, status, headers, rest = self._open(target, self.timeout, stop)
        with sock:
            if status != 200:
                body = self._body(sock, headers, rest)
                raise DockerError(f"reading logs of {container_id[:12]}: HTTP {status}: {_message(body)}")
            ctype = headers.get("content-type", "")
            dec = ChunkedDecoder() if "chunked" in headers.get("transfer-encoding", "").lower() else None
            sock.settimeout(self.poll)
            data = rest
            while True:
                if data:
                    body = dec.feed(data) if dec is not None else data
                    if body:
                        yield ctype, body
                    if dec is not None and dec.done:
                        return
                if stop.is_set():
                    return
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    data = b""
                    yield ctype, b""
                    continue
                except OSError as exc:
                    raise DockerError(f"log stream of {container_id[:12]} broke: {exc}") from exc
                if not data:
                    return


def permission_hint(path: str) -> str:
    """One line saying why the socket refused us and what fixes it (the usual DOCKER_GID mistake)."""
    try:
        gid: int | str = os.stat(path).st_gid
    except OSError:
        gid = "?"
    groups = ",".join(str(g) for g in sorted({os.getgid(), *os.getgroups()}))
    return (
        f"permission denied on the Docker socket {path}: this agent (uid {os.getuid()}, groups {groups}) "
        f"is not in its group (gid {gid}); set DOCKER_GID={gid} for the compose file, or add the "
        "agent's user to that group"
    )


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return doc["message"][:200]
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace")
