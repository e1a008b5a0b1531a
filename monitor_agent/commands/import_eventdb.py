"""`monitor-agent import-eventdb FILE`: backfill the local task history from the node's EventDB."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click

from ..config import load_config
from ..errors import AgentError, ConfigError
from ..logs.eventdb import eventdb_records
from ..logs.records import Invoice


def import_eventdb(path: Path, store) -> Counter:
    """Merge the file's tasks and invoices into `store`; idempotent (importing twice changes nothing)."""
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{path} is not valid JSON: {exc}") from exc
    stats: Counter = Counter()
    try:
        items = list(eventdb_records(doc, stats))
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    new: set[str] = set()
    changed_ids: set[str] = set()
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Invoice):
            if item.invoice_id is not None:
                data = {"steps": item.steps, "memoryPeak": item.memory_peak, **item.private}
                store.add_invoice(item.invoice_id, item.execution_id, item.at, data)
                stats["invoices stored"] += 1
            continue
        if item.execution_id not in seen and store.get_local_task(item.execution_id) is None:
            new.add(item.execution_id)
        seen.add(item.execution_id)
        _, changed, _ = store.merge_local_task(item)
        if changed:
            changed_ids.add(item.execution_id)
    stats["tasks"] = len(seen)
    stats["new tasks"] = len(new)
    stats["updated"] = len(changed_ids - new)
    stats["unchanged"] = len(seen - changed_ids - new)
    return stats


@click.command("import-eventdb")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def command(file: Path) -> None:
    """Backfill your node's task history from its EventDB FILE (`…-eventDB.json`).

    \b
    Reads `task_created`, `computed_outcome` and `invoice` records into the local database in
    DATA_DIR (never shared: imported history is not broadcast). Safe to run again: records
    already imported are merged, not duplicated. Works while the agent runs.

    \b
    Example:
      docker cp runner-node:/app/build/datadb/ ./datadb && \\
        monitor-agent import-eventdb ./datadb/*-eventDB.json
    """
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"monitor-agent: {exc}", err=True)
        sys.exit(2)
    from ..store import Store

    try:
        store = Store(config.db_path, retention_days=config.task_retention_days, start_writer=False)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        stats = import_eventdb(file, store)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(
        f"{file.name}: {stats['records']} records, {stats['tasks']} tasks "
        f"({stats['new tasks']} new, {stats['updated']} updated, {stats['unchanged']} unchanged), "
        f"{stats['invoices stored']} invoices, {stats['skipped']} records skipped -> {config.db_path}"
    )
