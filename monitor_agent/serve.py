"""Serving the agent under gunicorn: one gthread worker that builds the Agent and the app itself.

Why one worker: the agent owns one NATS connection and one SQLite writer. Why build in the
worker (not preloaded in the master): the federation thread and database handles must not
cross a fork. Shutdown: SIGTERM (or Ctrl-C) -> WebSocket clients are closed, in-flight requests
finish, then `worker_exit` stops the agent (presence `node_offline` sent, database closed).

Memory: `monitor-agent run` checks the configuration, then replaces itself (exec) with
`python -m monitor_agent.serve`, a lean gunicorn master that imports neither click nor the
agent; the worker loads the configuration and the agent after the fork. Resident memory
summed over master and worker is what an operator's `ps` shows, so the master carries only
gunicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from .http_worker import RequestReadingWorker

if TYPE_CHECKING:
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


class AgentWorker(RequestReadingWorker):
    """gthread worker that reads each request whole before a thread takes it (slow clients hold
    no thread: `monitor_agent.http_worker`) and tells live WebSocket handlers to finish when
    asked to stop."""

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
    from . import runfile

    with contextlib.suppress(OSError):
        runfile.remove(web.agent.config.data_dir)
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

    def __init__(
        self,
        config: Config | None,
        token: str | None,
        options: ServeOptions | None = None,
        *,
        bind: tuple[str, int] | None = None,
    ):
        # config/token None: loaded in the worker from the environment (see `main`).
        self.agent_config = config
        self.token = token
        self.options = options or ServeOptions()
        self.bind = bind or (config.monitor_host, config.monitor_port)
        super().__init__()

    def init(self, parser, opts, args):  # pragma: no cover - BaseApplication never parses argv here
        return None

    def load_config(self) -> None:
        o = self.options
        settings = {
            "bind": [f"{_bind_host(self.bind[0])}:{self.bind[1]}"],
            "workers": 1,
            "worker_class": "monitor_agent.serve.AgentWorker",
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
            config, token = self.agent_config, self.token
            if config is None:
                from .config import load_config
                from .web.auth import ensure_api_token

                config = load_config()
                token = ensure_api_token(config.api_token, config.data_dir).value
            app = build_agent_app(config, token, self.options)
            from . import runfile

            # This worker holds the listening socket: commands of this DATA_DIR find it here.
            runfile.write(config.data_dir, self.bind[0], self.bind[1])
            return app
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


# gunicorn's arbiter exits with these when the worker cannot boot or load the app.
BOOT_FAILURES = (3, AGENT_BOOT_FAILED)


def main(argv: list[str] | None = None) -> None:
    """The lean master `monitor-agent run` execs into (configuration already checked there)."""
    parser = argparse.ArgumentParser(prog="python -m monitor_agent.serve")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = ServeOptions(
        threads=args.threads,
        ws_max_clients=args.threads - 8,
        access_log=args.access_log,
        log_level=args.log_level,
    )
    master = os.getpid()
    try:
        AgentServer(None, None, options, bind=(args.host, args.port)).run()
    except SystemExit as exc:
        # The worker is a fork of this process: its exit status is gunicorn's business, not ours.
        if os.getpid() == master and exc.code in BOOT_FAILURES:
            print(
                "monitor-agent: stopped: the agent could not start (the reason is logged above)",
                file=sys.stderr,
            )
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
