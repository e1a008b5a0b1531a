"""Serving the agent under gunicorn: one gthread worker that builds the Agent and the app itself.

Why one worker: the agent owns one NATS connection and one SQLite writer. Why build in the
worker (not preloaded in the master): the federation thread and database handles must not
cross a fork. Shutdown: SIGTERM (or Ctrl-C) -> WebSocket clients are closed, in-flight requests
finish, then `worker_exit` stops the agent (presence `node_offline` sent, database closed).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from .config import Config

log = logging.getLogger("monitor_agent.serve")

# Exit status when the worker could not build the agent (shown to the operator by `run`).
AGENT_BOOT_FAILED = 4


@dataclass(frozen=True, slots=True)
class ServeOptions:
    threads: int = 32  # each WebSocket client holds one; HTTP needs the rest
    ws_max_clients: int = 24
    graceful_timeout: int = 10
    access_log: bool = False
    log_level: str = "info"


class AgentWorker(ThreadWorker):
    """gthread worker that also tells live WebSocket handlers to finish when asked to stop."""

    def _begin_shutdown(self) -> None:
        web = getattr(self.wsgi, "extensions", {}).get("monitor_agent") if self.wsgi else None
        if web is not None:
            web.shutting_down.set()

    def handle_exit(self, sig, frame):  # SIGTERM: graceful
        self._begin_shutdown()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame):  # SIGINT / SIGQUIT: quick, still through worker_exit
        self._begin_shutdown()
        super().handle_quit(sig, frame)


def _worker_exit(server: Any, worker: Any) -> None:
    """Runs in the worker after its loop ends: stop the agent cleanly."""
    app = getattr(worker, "wsgi", None)
    web = getattr(app, "extensions", {}).get("monitor_agent") if app is not None else None
    if web is None:
        return
    try:
        web.agent.stop()
        log.info("agent stopped cleanly")
    except Exception:
        log.exception("error while stopping the agent")


def build_agent_app(config: Config, token: str, options: ServeOptions):
    """The Agent (started, with its log sources) and its Flask app. Called inside the worker."""
    from .agent import Agent
    from .web import WebOptions, create_app

    agent = Agent(config)
    try:
        for source in _sources(config, agent):
            agent.register_source(source)
        agent.start()
    except BaseException:
        try:
            agent.stop()
        except Exception:  # already failing; the first error is the one to report
            log.debug("stop after failed start also failed", exc_info=True)
        raise
    web_options = WebOptions(ws_max_clients=options.ws_max_clients)
    return create_app(agent, token=token, options=web_options)


def _sources(config: Config, agent: Any) -> list:
    if config.node_log_source == "none":
        return []
    try:
        from .sources import build_sources
    except ImportError:
        log.warning("log sources are not available in this build: reading no node logs")
        return []
    return list(build_sources(config, agent))


class AgentServer(BaseApplication):
    """gunicorn embedded: bind, one gthread worker, our hooks; no config file or argv parsing."""

    def __init__(self, config: Config, token: str, options: ServeOptions | None = None):
        self.agent_config = config
        self.token = token
        self.options = options or ServeOptions()
        super().__init__()

    def init(self, parser, opts, args):  # pragma: no cover - BaseApplication never parses argv here
        return None

    def load_config(self) -> None:
        c, o = self.agent_config, self.options
        settings = {
            "bind": [f"{_bind_host(c.monitor_host)}:{c.monitor_port}"],
            "workers": 1,
            "worker_class": f"{__name__}.AgentWorker",
            "threads": o.threads,
            "graceful_timeout": o.graceful_timeout,
            "timeout": 60,
            "keepalive": 5,
            "proc_name": "monitor-agent",
            "preload_app": False,
            "worker_exit": _worker_exit,
            "accesslog": "-" if o.access_log else None,
            "errorlog": "-",
            "loglevel": o.log_level,
            "control_socket_disable": True,
            # Request line / header limits are gunicorn's defaults (4094 / 8190 bytes).
        }
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        try:
            return build_agent_app(self.agent_config, self.token, self.options)
        except Exception as exc:
            # One clear line; the arbiter then stops with a boot error that `run` reports.
            log.error("monitor-agent could not start: %s", exc)
            log.debug("start-up failure", exc_info=True)
            sys.stderr.flush()
            sys.exit(AGENT_BOOT_FAILED)


def _bind_host(host: str) -> str:
    """IPv6 literals need brackets in a gunicorn bind string."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host
