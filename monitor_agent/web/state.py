"""What the web layer keeps per app: the agent, the API token, WebSocket bookkeeping."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ..interfaces import AgentLike
    from .hosts import HostAllowList

EXTENSION = "monitor_agent"


@dataclass(slots=True)
class WebOptions:
    """Tunables of the web layer (tests and `monitor-agent run` set them)."""

    ws_queue_size: int = 256  # events buffered per WebSocket client before it counts as too slow
    ws_send_timeout_s: float = 5.0  # a send blocked this long (client stopped reading) drops the client
    ws_send_buffer: int = 64 * 1024  # kernel send buffer per WebSocket: bounds memory per stalled client
    ws_max_clients: int = 64  # each client holds a server thread; past this, new ones get 503
    ws_ping_interval_s: float | None = 25.0  # detects clients that vanished without closing


@dataclass(slots=True)
class WebState:
    agent: AgentLike
    token: str
    token_path: Path | None  # where the generated token is kept (None: given by the caller)
    options: WebOptions
    allowed_hosts: HostAllowList | None = None  # Host names (and WebSocket Origins) answered
    shutting_down: threading.Event = field(default_factory=threading.Event)
    ws_lock: threading.Lock = field(default_factory=threading.Lock)
    ws_clients: int = 0
    ws_dropped: dict[str, int] = field(default_factory=dict)

    def ws_enter(self) -> bool:
        """Count a new WebSocket client; False when the limit is reached."""
        with self.ws_lock:
            if self.ws_clients >= self.options.ws_max_clients:
                return False
            self.ws_clients += 1
            return True

    def ws_leave(self, reason: str | None) -> None:
        with self.ws_lock:
            self.ws_clients -= 1
            if reason:
                self.ws_dropped[reason] = self.ws_dropped.get(reason, 0) + 1


def state() -> WebState:
    web: WebState = current_app.extensions[EXTENSION]
    return web
