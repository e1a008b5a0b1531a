"""`/ws`: the live event feed (flask-sock). One bounded bus subscription per client.

Each connection holds one server thread for its lifetime (flask-sock is blocking), so the
number of clients is capped (`WebOptions.ws_max_clients`). A client that stops reading is
dropped two ways, whichever comes first: its bus queue fills ("client too slow"), or a send
blocks longer than `ws_send_timeout_s` because its TCP window stays shut.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import struct
from urllib.parse import urlsplit

import msgspec
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage

from .. import __version__
from . import serializers as ser
from .hosts import normalize_host
from .responses import error_response
from .state import state

log = logging.getLogger(__name__)

# RFC 6455 close codes.
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013

MAX_INCOMING = 4096  # clients have nothing to say; anything bigger closes the connection
_encode = msgspec.json.Encoder().encode


def origin_allowed(origin: str | None, host: str | None, allowed_hosts, allowed: tuple[str, ...]) -> bool:
    """A browser's WebSocket is this dashboard's own page: its Origin names a host on the Host
    allow-list (not merely the Host the request carries: under DNS rebinding both are the
    attacker's name) at the address the request came to; or the Origin is listed in
    MONITOR_WS_ORIGINS. No Origin: not a browser."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
        name = parts.hostname
    except ValueError:
        return False
    if (
        parts.scheme not in ("http", "https")
        or not host
        or not allowed_hosts.allows_name(normalize_host(name or ""))
    ):
        return False
    return parts.netloc.lower() == host.lower()


def handshake_problem(headers) -> tuple[int, str, dict[str, str] | None] | None:
    """Why these upgrade request headers are not a valid RFC 6455 handshake, as (status, message,
    headers), or None. Checked before flask-sock, whose handshake would otherwise fail with a 500."""
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        return 400, "WebSocket handshake: the Connection header must include Upgrade", None
    version = headers.get("Sec-WebSocket-Version")
    if version is None or version.strip() != "13":
        # RFC 6455 4.2.2: an unsupported version gets 426 and the version we speak.
        status = 400 if version is None else 426
        return (
            status,
            "WebSocket handshake: Sec-WebSocket-Version must be 13",
            {"Sec-WebSocket-Version": "13"},
        )
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return 400, "WebSocket handshake: Sec-WebSocket-Key must be 16 bytes in base64", None
    return None


def init_ws(app: Flask) -> None:
    app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    opts = app.extensions["monitor_agent"].options
    app.config["SOCK_SERVER_OPTIONS"].update(
        {"max_message_size": MAX_INCOMING, "ping_interval": opts.ws_ping_interval_s}
    )
    sock = Sock(app)

    @app.before_request
    def _ws_gate():
        # Runs before flask-sock's handshake: a refused client gets a plain HTTP answer.
        if request.path != "/ws":
            return None
        st = state()
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return error_response(400, "/ws is a WebSocket endpoint: connect with a WebSocket client")
        problem = handshake_problem(request.headers)
        if problem is not None:
            return error_response(*problem)
        if not origin_allowed(
            request.headers.get("Origin"), request.host, st.allowed_hosts, st.agent.config.ws_allowed_origins
        ):
            log.warning("WebSocket refused: Origin %r is not this dashboard", request.headers.get("Origin"))
            return error_response(403, "Origin not allowed: add it to MONITOR_WS_ORIGINS to allow it")
        if st.shutting_down.is_set():
            return error_response(503, "the agent is shutting down")
        if not st.ws_enter():
            return error_response(503, f"too many WebSocket clients (limit {st.options.ws_max_clients})")
        request.environ["monitor_agent.ws_counted"] = True
        return None

    @sock.route("/ws")
    def feed(ws):
        st = state()
        reason = None
        try:
            reason = _serve(ws, st)
        finally:
            if request.environ.pop("monitor_agent.ws_counted", False):
                st.ws_leave(reason)

    @app.teardown_request
    def _ws_release(_exc):
        # The handshake itself failed (bad Sec-WebSocket-Key, ...): the slot is still ours to free.
        if request.environ.pop("monitor_agent.ws_counted", False):
            state().ws_leave(None)


def _limit_send(ws, st) -> None:
    """Bound what a stalled client can cost: a small kernel buffer and a send timeout."""
    sock = getattr(ws, "sock", None)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, st.options.ws_send_buffer)
        secs = st.options.ws_send_timeout_s
        tv = struct.pack("ll", int(secs), int((secs % 1) * 1_000_000))
        # SO_SNDTIMEO (not settimeout): the reader thread's blocking recv must stay untimed.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    except OSError:  # not a TCP socket (tests on odd transports): keep the defaults
        pass


def _hello(st) -> bytes:
    status = ser.status(st.agent.status())
    return _encode({"type": "hello", "data": {"version": __version__, "status": status}})


def _serve(ws, st) -> str | None:
    """Pump bus events to one client until it leaves, lags, or the agent stops. Returns why it ended."""
    _limit_send(ws, st)
    sub = st.agent.bus.subscribe(maxsize=st.options.ws_queue_size)
    peer = request.remote_addr
    log.info("WebSocket client connected from %s (%d open)", peer, st.ws_clients)
    try:
        ws.send(_hello(st).decode())
        while True:
            if st.shutting_down.is_set():
                _close(ws, GOING_AWAY, "agent shutting down")
                return "shutdown"
            if not ws.connected:
                return None
            # Clients send nothing we use; drain so their input buffer stays empty.
            while ws.receive(timeout=0) is not None:
                pass
            event = sub.get(timeout=0.5)
            if event is None:
                if sub.closed:
                    why = sub.close_reason or "closed"
                    log.warning("WebSocket client %s dropped: %s", peer, why)
                    _close(ws, TRY_AGAIN_LATER if "slow" in why else GOING_AWAY, why)
                    return why
                continue
            try:
                _send(ws, _encode(event).decode())  # the agent publishes public shapes only
            except (BlockingIOError, TimeoutError):
                log.warning("WebSocket client %s dropped: not reading (send blocked)", peer)
                _abort(ws)
                return "send timeout"
    except ConnectionClosed:
        return None
    except OSError as exc:
        log.info("WebSocket client %s gone: %s", peer, exc)
        return None
    finally:
        sub.close("client left")
        log.info("WebSocket client %s disconnected", peer)


def _send(ws, text: str) -> None:
    """Send one text frame completely (simple_websocket's send ignores short writes).

    With SO_SNDTIMEO a blocked send raises BlockingIOError once no byte moved for the timeout.
    """
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    data = memoryview(ws.ws.send(TextMessage(data=text)))
    while data:
        sent = ws.sock.send(data)
        data = data[sent:]


CLOSE_WAIT_S = 1.0  # how long a client gets to answer our close frame


def _close(ws, code: int, message: str) -> None:
    """Send a close frame, give the client a moment to answer, then drop the connection.

    A client that never answers would otherwise keep the reader thread (and at shutdown the
    worker process) alive.
    """
    try:
        ws.close(reason=code, message=message[:120])
    except (ConnectionClosed, OSError):
        pass
    reader = getattr(ws, "thread", None)
    if reader is not None:
        reader.join(CLOSE_WAIT_S)
        if reader.is_alive():
            _abort(ws)


def _abort(ws) -> None:
    """A frame may be half-sent: no close frame is possible, shut the socket."""
    ws.connected = False
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
