"""Serving the console with gunicorn: one worker process (one sampler), threads for concurrency.

The worker is the agent's `RequestReadingWorker` (gthread that reads every request whole in its
event loop before a thread serves it), so slow or stalled clients cannot take the threads."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class ConsoleServer(BaseApplication):
    """gunicorn with an app built beforehand (so start-up errors are ours, one line, no traceback);
    the sampler thread starts inside the worker, after the fork."""

    def __init__(self, app, bind: str, threads: int = 8, access_log: bool = False):
        self.application = app
        self.options = {
            "bind": bind,
            "workers": 1,  # the sampler and the login rate limiter live in one process
            "worker_class": "monitor_agent.http_worker.RequestReadingWorker",
            "threads": threads,
            "preload_app": True,
            "timeout": 30,
            "graceful_timeout": 5,
            "errorlog": "-",
            "accesslog": "-" if access_log else None,
            "proc_name": "seedctl-console",
            "post_worker_init": lambda worker: app.extensions["sampler"].start(),
            "worker_exit": lambda server, worker: app.extensions["sampler"].stop(),
            # gunicorn >= 24 opens a control socket under ~/.gunicorn; a console does not need one
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if value is not None and key in self.cfg.settings:  # settings differ across gunicorn versions
                self.cfg.set(key, value)

    def load(self):
        return self.application
