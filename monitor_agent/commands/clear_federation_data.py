"""`monitor-agent clear-federation-data`: the right to erasure, from the command line."""

from __future__ import annotations

import logging
import sys

import click

from .. import runfile
from ..config import load_config
from ..errors import AgentError, ConfigError


def _running_agent(config) -> dict | None:
    """The agent serving this DATA_DIR ({"host", "port", "pid"}), None when none runs.

    Never guessed from MONITOR_PORT: only the agent that recorded itself in DATA_DIR/agent.json,
    and only if that process really holds the recorded port (else the API token would go to
    whatever program listens there)."""
    info = runfile.read(config.data_dir)
    if info is None or not runfile.pid_alive(info["pid"]):
        return None
    if not runfile.holds_listener(info["pid"], info["port"]):
        raise click.ClickException(
            f"{runfile.path(config.data_dir)} names agent pid {info['pid']} on port {info['port']}, but that "
            "process does not serve that port: not sending the API token to whatever listens there. "
            "If no agent uses this DATA_DIR, delete that file and run this again"
        )
    return info


def _through_running_agent(info: dict, token: str | None) -> dict:
    """Ask the running agent to erase (its in-memory views change too)."""
    import httpx  # only this command needs it: keep the CLI's other commands small

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no request lines among the answer
    if token is None:
        raise click.ClickException(
            f"the agent on port {info['port']} needs its API token: set MONITOR_API_TOKEN to it"
        )
    host = info["host"]
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{info['port']}/api/federation/clear"
    try:
        r = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.TransportError as exc:
        raise click.ClickException(f"the agent on port {info['port']} did not answer: {exc}") from None
    if r.status_code == 401:
        raise click.ClickException(
            f"the agent on port {info['port']} refused the API token: set MONITOR_API_TOKEN to its token"
        )
    if r.status_code != 200:
        raise click.ClickException(f"the agent on port {info['port']} answered HTTP {r.status_code}")
    return r.json()["deleted"]


def _directly(config) -> dict:
    from ..store import Store

    if not config.db_path.exists():
        return {"tasks": 0, "peers": 0}
    store = Store(config.db_path, retention_days=config.task_retention_days, start_writer=False)
    try:
        return store.clear_federation()
    finally:
        store.close()


@click.command("clear-federation-data")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def command(yes: bool) -> None:
    """Delete every task and peer received from the federation (right to erasure).

    Your own node's task history is kept. If the agent of this DATA_DIR is running (it records
    itself in DATA_DIR/agent.json) it is asked to do it, so its dashboard updates at once;
    otherwise the database in DATA_DIR is edited directly. No other program is ever contacted.

    While receiving is on, peers come back with their next message: turn receiving off first
    (dashboard Settings, or FEDERATION_RECEIVE_ENABLED=false) to keep them away.
    """
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"monitor-agent: {exc}", err=True)
        sys.exit(2)
    info = _running_agent(config)
    if not yes:
        click.confirm(f"Delete all received federation tasks and peers in {config.db_path}?", abort=True)
    if info is not None:
        token = config.api_token
        if token is None:
            token_file = config.data_dir / "api-token"
            token = token_file.read_text(encoding="utf-8").strip() if token_file.exists() else None
        deleted = _through_running_agent(info, token)
        how = f"through the running agent (pid {info['pid']})"
    else:
        how = "in the database"
        try:
            deleted = _directly(config)
        except AgentError as exc:
            raise click.ClickException(str(exc)) from None
    tasks, peers = deleted["tasks"], deleted["peers"]
    click.echo(
        f"Deleted {tasks} federation task{'s' * (tasks != 1)} and {peers} peer{'s' * (peers != 1)} {how}"
        f" ({config.db_path})."
    )
    if config.enable_federation and config.receive_enabled:
        click.echo(
            "Receiving is on: peers reappear with their next message. To keep them away, turn receiving "
            "off first (dashboard Settings, or FEDERATION_RECEIVE_ENABLED=false) and clear again."
        )
