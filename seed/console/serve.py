"""Serving the console: one process, the agent's request-reading gthread worker, no gunicorn master.

The worker is `monitor_agent.http_worker`'s (it reads every request whole in its event loop
before a thread serves it, so slow or stalled clients cannot take the threads), run in this
process by `serve_in_process` as `monitor-agent run` does: one sampler and one login limiter
live in it, so there is nothing for a master to do.
"""

from __future__ import annotations

from monitor_agent.http_worker import InProcessWorker, exit_now, serve_in_process


def serve(app, bind: str, threads: int = 8, access_log: bool = False) -> None:
    """Serve `app` (built beforehand, so start-up errors are ours, one line) on `bind` until
    SIGTERM or Ctrl-C; the sampler thread starts once the server is up and stops with it."""
    settings = {
        "bind": [bind],
        "threads": threads,
        "timeout": 30,
        "graceful_timeout": 5,
        "errorlog": "-",
        "accesslog": "-" if access_log else None,
        "proc_name": "seedctl-console",
        "post_worker_init": lambda worker: app.extensions["sampler"].start(),
        "worker_exit": lambda server, worker: app.extensions["sampler"].stop(),
    }
    try:
        serve_in_process(InProcessWorker, settings, lambda: app)
    except SystemExit as exc:  # Ctrl-C: quick stop (the sampler is already stopped)
        exit_now(exc.code if isinstance(exc.code, int) else 1)
    exit_now(0)
