"""`seedctl demo`: a seed, the health console and two federated agents on loopback, in one command."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from ..demo import Demo, DemoError, make_root
from ..lifecycle import LifecycleError
from ..natsbin import NatsServerError
from ..secrets import SecretError
from ..spec import SpecError


class _Stop(Exception):
    """Raised from the signal handler: Ctrl-C or SIGTERM asks for a clean stop."""


def _raise_stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _still_stopping(_signum, _frame):
    click.echo("still stopping, please wait (every part is being shut down)...", err=True)


@click.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's state here (spec, credentials, agents' databases and node keys) and reuse "
    "it next time. Default: a private temp dir, removed on exit.",
)
def command(data_dir: Path | None) -> None:
    """Run a whole federation on this machine: the quickest way to see it work.

    Starts on 127.0.0.1, from embedded defaults and with no internet or Docker needed:

    \b
      1. a NATS seed server from a generated spec, with fresh credentials
      2. the health console (login printed below)
      3. monitor agent A, following a bundled sample node log replayed with
         realistic timing, sharing its anonymized task events
      4. monitor agent B, receiving them (its Network tab shows A's tasks)

    Prints the URLs and the console login, then runs until Ctrl-C (or SIGTERM), which stops
    every part and leaves nothing running. Preferred ports (4222, 8222, 8300, 8090, 8091) are
    used when free, others otherwise.

    \b
    Examples:
      seedctl demo
      seedctl demo --data-dir ./demo-data     # keep identities and history between runs
    """
    root, keep = make_root(data_dir)
    demo = Demo(root, keep, progress=click.echo)
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        click.echo(f"seedctl demo: starting a federation on 127.0.0.1 (state in {root})")
        demo.start()
        click.echo(demo.summary())
        _watch(demo)
    except _Stop as stop:
        click.echo(f"\n{stop.args[0]}: stopping every part...")
    except (DemoError, LifecycleError, NatsServerError, SecretError, SpecError, OSError) as exc:
        click.echo(f"seedctl demo: {exc}", err=True)
        code = 1
    finally:
        for s in previous:
            signal.signal(s, _still_stopping)
        demo.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code == 0:
        click.echo("demo stopped; nothing left running." + ("" if keep else " State removed."))
    sys.exit(code)


def _watch(demo: Demo) -> None:
    """Run until a signal; say so once if a part dies (the others keep running)."""
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        parts = [(a.proc.name, a.proc) for a in demo.agents]
        if demo.console is not None:
            parts.append(("console", demo.console))
        for name, proc in parts:
            if name not in reported and not proc.alive():
                reported.add(name)
                click.echo(f"{name} exited unexpectedly: {proc.log_tail()} (log {proc.log_path})", err=True)
