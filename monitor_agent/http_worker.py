"""gunicorn's gthread worker, except that a request is read to its end before a thread takes it.

Why: gthread hands a connection to a thread as soon as its first bytes arrive, and the thread
then blocks in a read until the request is complete. A client that sends half a request line
and waits (slowloris) holds a thread for as long as it likes; as many such clients as threads
and the server answers nobody. Here the worker's event loop (the selector gthread already runs
for accepting and kept-alive connections) reads each request, head and body, into a buffer;
only a complete request reaches the thread pool, already in gunicorn's parser's buffer. So a
slow or stalled client costs a file descriptor and a few KiB, never a thread.

Bounds, checked in the event loop without a thread (`monitor_agent.httpread`):
- a request must arrive whole within `read_timeout` seconds of its first byte being expected
  (the connection's accept, or the end of the previous response): else 408 and close
  (silent close when nothing at all arrived);
- the request line and headers at most 32 KiB (431), the body at most `max_body` bytes
  (413, for Content-Length and chunked bodies alike), then close;
- `Expect: 100-continue` is answered from the loop, so such a body is read there too.
- connections never outnumber the open-file limit (raised to the hard limit at start); past
  that many unfinished requests the oldest is dropped to make room, and an accept() that fails
  for lack of file descriptors sheds one instead of killing the worker.

Used by `monitor-agent run` (`monitor_agent.serve.AgentWorker`, in one process through
`serve_in_process` below: no gunicorn master) and `seedctl console`.
Plain HTTP only (both servers bind loopback or sit behind a TLS proxy).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import resource
import selectors
import socket
import sys
import time
from collections import OrderedDict
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from . import httpread

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


_LINGER_S = 2.0  # after a refusal: how long unread request bytes are drained before closing
_LINGER_BYTES = 256 * 1024


class _Reading:
    __slots__ = ("conn", "buf", "deadline", "continued", "lingering", "registered")

    def __init__(self, conn, buf: bytes, deadline: float):
        self.conn = conn
        self.buf = bytearray(buf)
        self.deadline = deadline
        self.continued = False
        self.lingering = 0  # > 0 after a refusal: bytes drained so far, + 1
        self.registered = False


class RequestReadingWorker(ThreadWorker):
    """gthread with whole-request reading in the event loop (see the module docstring)."""

    read_timeout: float = httpread.READ_TIMEOUT_S
    max_body: int = httpread.MAX_BODY_BYTES
    max_head: int = httpread.MAX_HEAD_BYTES

    def init_process(self):
        # Connections being read, and refused ones being drained; each in deadline order (one
        # timeout per dict, so insertion order is deadline order).
        self._reading: OrderedDict[int, _Reading] = OrderedDict()
        self._lingering: OrderedDict[int, _Reading] = OrderedDict()
        self._shed_logged = 0.0
        # Connections are file descriptors: never accept more than the process may open (an
        # accept() failing with EMFILE would kill the worker), and keep room for the app's own.
        fd_budget = _raise_fd_limit() - 64
        self.worker_connections = max(self.cfg.threads + 32, min(self.worker_connections, fd_budget))
        # Past this many unfinished requests, the oldest one is dropped to make room: a flood of
        # slow clients evicts itself, and new connections (whole requests) are still accepted.
        self.max_reading = max(16, self.worker_connections - self.cfg.threads - 16)
        super().init_process()

    def accept(self, listener):
        try:
            super().accept(listener)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            if not self._shed_oldest("out of file descriptors"):
                time.sleep(0.05)  # nothing of ours to free: let threads finish, do not spin

    # -- every path into the thread pool comes through here --------------------------------

    def enqueue_req(self, conn):
        if self.cfg.is_ssl:  # TLS records are read in the thread, as gthread does
            return super().enqueue_req(conn)
        return self._start_reading(conn)

    def _start_reading(self, conn) -> None:
        buffered = _take_buffered(conn.parser) if conn.parser is not None else b""
        conn.sock.setblocking(False)
        reading = _Reading(conn, buffered, time.monotonic() + self.read_timeout)
        while len(self._reading) >= self.max_reading and self._shed_oldest("too many unfinished requests"):
            pass
        self._reading[id(conn)] = reading
        if buffered and self._advance(reading):
            return
        try:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, reading))
            reading.registered = True
        except (OSError, ValueError, KeyError):
            self._drop(reading)

    def _on_readable(self, reading: _Reading, _sock) -> None:
        try:
            data = reading.conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away (or finished sending after a refusal)
            self._drop(reading)
            return
        if reading.lingering:
            reading.lingering += len(data)
            if reading.lingering > _LINGER_BYTES:
                self._drop(reading)
            return
        reading.buf += data
        self._advance(reading)

    def _advance(self, reading: _Reading) -> bool:
        """Act on the bytes so far; True when the request is no longer being read."""
        found = httpread.frame(reading.buf, self.max_body, self.max_head)
        if found.state == "incomplete":
            if found.expects_continue and not reading.continued:
                reading.continued = True
                if not _send(reading.conn.sock, _CONTINUE):
                    self._drop(reading)
                    return True
            return False
        if found.state == "refuse":
            self._refuse(reading, found.status)
        else:
            self._dispatch(reading)
        return True

    def _dispatch(self, reading: _Reading) -> None:
        conn = reading.conn
        self._forget(reading)
        data = bytes(reading.buf)
        if reading.continued:  # gunicorn must not send a second 100 Continue
            data = httpread.without_expect(data, data.find(b"\r\n\r\n") + 4)
        conn.sock.setblocking(True)
        if conn.parser is None:
            conn.init()  # plain HTTP: makes the parser, no I/O
        conn.parser.unreader.unread(data)
        conn.data_ready = True  # gunicorn >= 24: no wait for data in the thread, it is here
        super().enqueue_req(conn)  # to a thread (enqueue_req above would read it again)

    # -- ends ---------------------------------------------------------------------------------

    def _refuse(self, reading: _Reading, status: int) -> None:
        """Answer `status`, then close the way RFC 9112 9.6 asks: half-close and drain what the
        client is still sending for a moment (an abrupt close would reset the connection, and
        the client might never read the answer)."""
        sock = reading.conn.sock
        if not _send(sock, httpread.refusal(status)):
            self._drop(reading)
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        self._reading.pop(id(reading.conn), None)
        reading.buf = bytearray()
        reading.lingering = 1
        reading.deadline = time.monotonic() + _LINGER_S
        self._lingering[id(reading.conn)] = reading
        if not reading.registered:
            try:
                self.poller.register(sock, selectors.EVENT_READ, partial(self._on_readable, reading))
                reading.registered = True
            except (OSError, ValueError, KeyError):
                self._drop(reading)

    def _forget(self, reading: _Reading) -> None:
        self._reading.pop(id(reading.conn), None)
        self._lingering.pop(id(reading.conn), None)
        if reading.registered:
            reading.registered = False
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.poller.unregister(reading.conn.sock)

    def _drop(self, reading: _Reading) -> None:
        self._forget(reading)
        self.nr_conns -= 1
        reading.conn.close()

    def _shed_oldest(self, why: str) -> bool:
        """Drop the connection whose request has been arriving the longest (408 if it sent
        anything); False if no request is being read."""
        pending = self._lingering or self._reading
        if not pending:
            return False
        reading = next(iter(pending.values()))
        if reading.buf and not reading.lingering:
            _send(reading.conn.sock, httpread.refusal(408))
        self._drop(reading)
        now = time.monotonic()
        if now - self._shed_logged > 10:
            self._shed_logged = now
            self.log.warning("dropping the slowest unfinished requests: %s (slow clients?)", why)
        return True

    def _expire(self, everything: bool = False) -> None:
        now = time.monotonic()
        for pending in (self._reading, self._lingering):
            while pending:
                reading = next(iter(pending.values()))
                if reading.deadline > now and not everything:
                    break
                if reading.buf and not reading.lingering:
                    _send(reading.conn.sock, httpread.refusal(408))
                self._drop(reading)

    def murder_keepalived(self, *args, **kwargs):
        # gthread's loop calls this about once a second, and while stopping.
        super().murder_keepalived(*args, **kwargs)
        self._expire(everything=not self.alive)


def _raise_fd_limit(cap: int = 65536) -> int:
    """Raise the soft limit on open files to the hard limit (at most `cap`); the soft limit."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        return cap if soft == resource.RLIM_INFINITY else soft
    except (ValueError, OSError):
        return 1024


def _take_buffered(parser) -> bytes:
    """Bytes gunicorn's parser already read past the last request (a pipelined next request)."""
    unreader = parser.unreader
    if hasattr(unreader, "take_buffered"):
        return unreader.take_buffered()
    data = unreader.buf.getvalue()
    unreader.buf = io.BytesIO()
    return data


def _send(sock, data: bytes) -> bool:
    """Best-effort non-blocking send of a short answer; False if the socket is unusable."""
    try:
        sock.send(data)
        return True
    except OSError:
        return False


class InProcessWorker(RequestReadingWorker):
    """The worker as the only process (`serve_in_process`): no master watches its heartbeat,
    and a changed parent (the shell that started it exited) is no reason to stop."""

    def notify(self):
        pass

    def is_parent_alive(self) -> bool:
        return True


def serve_in_process(worker_class: type[InProcessWorker], settings: dict, load) -> None:
    """Run `worker_class` in this process, with no gunicorn master: bind, call `load()` for the
    WSGI app (after the signal handlers are in place), serve until SIGTERM/SIGINT, return.

    What the master would add is not needed here: one worker, nothing to restart or reload, and
    the heartbeat it watches only costs a syscall a second. The master's own interpreter was a
    third of the agent's memory. Exceptions from `load()` propagate (the caller reports them).
    """
    from gunicorn import sock
    from gunicorn.config import Config

    cfg = Config()
    for key, value in settings.items():
        if value is not None and key in cfg.settings:  # settings differ across gunicorn versions
            cfg.set(key, value)
    log = cfg.logger_class(cfg)
    listeners: list[Any] = sock.create_sockets(cfg, log)
    for listener in listeners:
        log.info("Listening at: %s (%s)", listener, os.getpid())
    app: Any = _Loader(load)  # all a worker asks of gunicorn's Application: wsgi()
    worker = worker_class(1, os.getppid(), listeners, app, cfg.timeout / 2.0, cfg, log)
    worker.pid = str(os.getpid())
    log.info("Booting worker with pid: %s", worker.pid)  # gunicorn's line: once per process now
    try:
        worker.init_process()  # returns when the loop ends (SIGTERM); SIGINT raises SystemExit(0)
    finally:
        worker.tmp.close()
        for listener in listeners:
            with contextlib.suppress(OSError):
                listener.close()
        cfg.worker_exit(None, worker)


def exit_now(code: int) -> None:
    """Exit after `serve_in_process` returned, without waiting for server threads: the graceful
    period is over and the app's own shutdown has run; a thread still stuck in a request (a
    master would SIGKILL such a worker) must not keep the process alive."""
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


class _Loader:
    """What a gunicorn worker loads its app from (the master's Application, minus the master)."""

    def __init__(self, load):
        self.load = load

    def wsgi(self):
        return self.load()
