"""Serving the agent: one process, gunicorn's gthread worker without gunicorn's master.

`monitor-agent run` checks the configuration, then replaces itself (exec) with
`python -m monitor_agent.serve` (no click), which binds, builds the Agent and its app, and serves
with `AgentWorker` in the same process (`http_worker.serve_in_process`). Why no master: the
agent owns one NATS connection and one SQLite writer, so there is exactly one worker and nothing
for a master to balance, restart or reload; its interpreter was a third of the agent's memory
(docs/ARCHITECTURE.md, "Why this server"). Shutdown: SIGTERM (or Ctrl-C) -> WebSocket clients
are closed, in-flight requests finish (at most `graceful_timeout`), then `worker_exit` stops the
agent (presence `node_offline` sent, database closed) and the process exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .http_worker import InProcessWorker, exit_now, serve_in_process

if TYPE_CHECKING:
    from .config import Config
    from .interfaces import AgentLike, Source

log = logging.getLogger("monitor_agent.serve")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    threads: int = 32  # each WebSocket client holds one; HTTP needs the rest
    ws_max_clients: int = 24
    graceful_timeout: int = 10
    access_log: bool = False
    log_level: str = "info"


class AgentWorker(InProcessWorker):
    """gthread worker that reads each request whole before a thread takes it (slow clients hold
    no thread: `monitor_agent.http_worker`) and tells live WebSocket handlers to finish when
    asked to stop."""

    def _begin_shutdown(self) -> None:
        app = getattr(self, "wsgi", None)  # None while the agent is still being built
        web = getattr(app, "extensions", {}).get("monitor_agent") if app is not None else None
        if web is not None:
            web.shutting_down.set()

    def handle_exit(self, sig, frame):  # SIGTERM: graceful
        self._begin_shutdown()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame):  # SIGINT / SIGQUIT: quick, still through worker_exit
        self._begin_shutdown()
        super().handle_quit(sig, frame)


def _worker_exit(server: Any, worker: Any) -> None:
    """Runs after the server loop ends: stop the agent cleanly."""
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
    """The Agent (started, with its log sources) and its Flask app."""
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


def _sources(config: Config, agent: AgentLike) -> list[Source]:
    if config.node_log_source == "none":
        return []
    try:
        from .sources import build_sources
    except ImportError:
        log.warning("log sources are not available in this build: reading no node logs")
        return []
    return list(build_sources(config, agent))


def _settings(bind: tuple[str, int], o: ServeOptions) -> dict[str, Any]:
    return {
        "bind": [f"{_bind_host(bind[0])}:{bind[1]}"],
        "threads": o.threads,
        "graceful_timeout": o.graceful_timeout,
        "timeout": 60,
        "keepalive": 5,
        "proc_name": "monitor-agent",
        "worker_exit": _worker_exit,
        "accesslog": "-" if o.access_log else None,
        "errorlog": "-",
        "loglevel": o.log_level,
        # Request line / header limits are gunicorn's defaults (4094 / 8190 bytes).
    }


class AgentDidNotStart(Exception):
    """Building the agent failed (its message says why, e.g. FED_006 for an unusable database)."""


def _load_from_environment(bind: tuple[str, int], options: ServeOptions):
    """The configuration (checked by `run` already), the agent, its app; the run file."""
    from . import runfile
    from .config import load_config
    from .web.auth import ensure_api_token

    try:
        config = load_config()
        token = ensure_api_token(config.api_token, config.data_dir).value
        app = build_agent_app(config, token, options)
    except Exception as exc:
        raise AgentDidNotStart(str(exc)) from exc
    # This process holds the listening socket: commands of this DATA_DIR find it here.
    runfile.write(config.data_dir, bind[0], bind[1])
    return app


def _bind_host(host: str) -> str:
    """IPv6 literals need brackets in a gunicorn bind string."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def main(argv: list[str] | None = None) -> None:
    """What `monitor-agent run` execs into (configuration already checked there)."""
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
    bind = (args.host, args.port)
    try:
        serve_in_process(AgentWorker, _settings(bind, options), lambda: _load_from_environment(bind, options))
    except SystemExit as exc:  # SIGINT / SIGQUIT: quick stop, the agent already stopped
        exit_now(exc.code if isinstance(exc.code, int) else 1)
    except AgentDidNotStart as exc:
        # One clear line (the agent's own errors say what to fix), no traceback.
        log.error("monitor-agent could not start: %s", exc)
        log.debug("start-up failure", exc_info=True)
        print("monitor-agent: stopped: the agent could not start (the reason is logged above)", file=sys.stderr)
        exit_now(1)
    exit_now(0)


if __name__ == "__main__":
    main()
