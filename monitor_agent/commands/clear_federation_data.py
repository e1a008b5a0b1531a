"""`monitor-agent clear-federation-data`: the right to erasure, from the command line."""

from __future__ import annotations

import sys

import click

from ..config import load_config
from ..errors import AgentError, ConfigError


def _through_running_agent(config, token: str) -> dict | None:
    """Ask a running agent to erase (its in-memory views change too); None when none answers."""
    import httpx  # only this command needs it: keep `monitor-agent run`'s master process small

    host = "127.0.0.1" if config.monitor_host in ("0.0.0.0", "::", "[::]") else config.monitor_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{config.monitor_port}/api/federation/clear"
    try:
        r = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.TransportError:
        return None
    if r.status_code == 401:
        raise click.ClickException(
            f"the agent on port {config.monitor_port} refused the API token: set MONITOR_API_TOKEN to its token"
        )
    if r.status_code != 200:
        raise click.ClickException(
            f"the agent on port {config.monitor_port} answered HTTP {r.status_code}: {r.text}"
        )
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

    Your own node's task history is kept. If the agent is running on MONITOR_PORT it is asked
    to do it (so its dashboard updates at once); otherwise the database in DATA_DIR is edited
    directly.
    """
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"monitor-agent: {exc}", err=True)
        sys.exit(2)
    if not yes:
        click.confirm(f"Delete all received federation tasks and peers in {config.db_path}?", abort=True)
    token = config.api_token
    if token is None:
        token_file = config.data_dir / "api-token"
        token = token_file.read_text(encoding="utf-8").strip() if token_file.exists() else None
    deleted = _through_running_agent(config, token) if token else None
    how = "through the running agent"
    if deleted is None:
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
