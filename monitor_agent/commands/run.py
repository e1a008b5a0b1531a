"""`monitor-agent run`: ingestion, federation (if opted in) and the web app under gunicorn."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from pathlib import Path
from typing import NoReturn

import click

from .. import __version__
from ..config import load_config, read_env_file
from ..errors import ConfigError, FederationError
from ..identity import load_identity
from ..web.auth import ensure_api_token


def _port_free(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc
    return None


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"monitor-agent: {message}", err=True)
    sys.exit(code)


@click.command("run")
@click.option(
    "--threads",
    type=click.IntRange(12, 512),
    default=32,
    show_default=True,
    help="Server threads. Each open dashboard (WebSocket) holds one; 8 stay free for the API.",
)
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True, help="Log every HTTP request."
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read settings from this file (VARIABLE=value lines, like the NAME.env `seedctl users "
    "credentials` writes); relative paths in it are relative to the file. Variables already set in "
    "the environment win.",
)
def command(threads: int, access_log: bool, env_file: Path | None) -> None:
    """Run the agent: read the node's logs, keep task history in DATA_DIR, share anonymized
    events only if ENABLE_FEDERATION=true, and serve the dashboard and API on MONITOR_PORT.

    \b
    Binds 127.0.0.1:8090 unless MONITOR_HOST / MONITOR_PORT say otherwise.
    Stop with Ctrl-C or SIGTERM: peers are told this node went offline and
    the database is closed cleanly.

    \b
    Main settings (environment; all of them: docs/PROTOCOL.md section 7):
      DATA_DIR=./data              database, node key, API token (0600)
      NODE_LOG_SOURCE=docker       docker (NODE_CONTAINER=runner-node), files (NODE_LOG_DIR), none
      ENABLE_FEDERATION=false      opt in to sharing with the seed(s) of FEDERATION_SEED_URL
      FEDERATION_CREDENTIALS       file from `seedctl users credentials` (user:password or nkey)
      FEDERATION_PRIVACY=standard  or strict (no block numbers, coarse times)
      MONITOR_API_TOKEN            token for settings/erasure and private fields; default: generated
                                   into DATA_DIR/api-token
      MONITOR_ALLOWED_HOSTS        host names the dashboard answers to besides localhost/127.0.0.1
                                   and MONITOR_HOST (others get 421: DNS-rebinding defence)

    \b
    Examples:
      monitor-agent run
      NODE_LOG_SOURCE=files NODE_LOG_DIR=/var/log/truebit monitor-agent run
      ENABLE_FEDERATION=true FEDERATION_SEED_URL=nats://seed.example.org:4222 \\
        FEDERATION_CREDENTIALS=./monitor/monitor.nk monitor-agent run
      ENABLE_FEDERATION=true monitor-agent run --env-file ./monitor/monitor.env
    """
    try:
        if env_file is not None:
            for key, value in read_env_file(env_file).items():
                os.environ.setdefault(key, value)
        config = load_config()
    except ConfigError as exc:
        _fail(str(exc), 2)
    logging.getLogger().setLevel(config.log_level)

    problem = _port_free(config.monitor_host, config.monitor_port)
    if problem is not None:
        if problem.errno == errno.EADDRINUSE:
            _fail(f"MONITOR_PORT={config.monitor_port} is already in use on {config.monitor_host}", 2)
        _fail(
            f"cannot listen on MONITOR_HOST={config.monitor_host}:{config.monitor_port}: {problem.strerror}",
            2,
        )
    try:
        # The node key is created here on first start; a FEDERATION_NODE_ID it cannot carry stops us now.
        identity = load_identity(config.data_dir, config.node_id)
        token = ensure_api_token(config.api_token, config.data_dir)
    except FederationError as exc:
        _fail(exc.message, 2)
    except OSError as exc:
        _fail(f"cannot use DATA_DIR={str(config.data_dir)!r}: {exc.strerror or exc}", 2)

    if token.created:
        click.echo(f"API token generated in {token.path} (send it as: Authorization: Bearer <token>)")
    elif token.path is not None:
        click.echo(f"API token: {token.path}")
    fed = (
        "on, seed " + config.seed_url_display if config.enable_federation else "off (ENABLE_FEDERATION=false)"
    )
    click.echo(
        f"monitor-agent {__version__}: dashboard and API on http://{config.monitor_host}:{config.monitor_port}/"
        f" · federation {fed} · node {identity.node_id} · data in {config.data_dir}"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the one serving process (see monitor_agent/serve.py): same pid, same signals, no click.
    argv = [
        sys.executable,
        "-m",
        "monitor_agent.serve",
        "--host",
        config.monitor_host,
        "--port",
        str(config.monitor_port),
        "--threads",
        str(threads),
        "--log-level",
        config.log_level.lower(),
    ]
    if access_log:
        argv.append("--access-log")
    env = dict(os.environ)
    # Two malloc arenas instead of one per thread: each WebSocket client holds a server thread,
    # and per-thread arenas would keep their freed memory resident.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, fixed argv
