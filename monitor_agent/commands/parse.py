"""`monitor-agent parse FILE... [--shared]`: audit what the agent reads from node logs, and what it
would share, before opting in. Reads files only; writes nothing (not even a node key)."""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import zlib
from pathlib import Path

import click

from ..config import load_config
from ..errors import AgentError, ConfigError
from ..logs import LogParser
from ..model import BROADCAST_STATUSES, TaskEvent
from ..sources.files import Reader, list_log_files

CHUNK = 1024 * 1024


def parse_files(paths: list[Path], progress=None) -> tuple[list, LogParser]:
    """Every record of the files, read in the order given (as one stream), and the parser."""
    parser = LogParser()
    records: list = []
    for path in paths:
        reader = Reader(parser, 0)
        opener = gzip.open if path.name.endswith(".gz") else open
        try:
            with opener(path, "rb") as fh:
                while data := fh.read(CHUNK):
                    records += reader.feed(data)
                    if progress:
                        progress(len(data))
        except (OSError, EOFError, zlib.error) as exc:
            click.echo(f"monitor-agent parse: {path}: damaged after {reader.consumed} bytes: {exc}", err=True)
        records += reader.finish()
    return records, parser


def _tasks(records: list):
    from ..store import merge_event

    rows: dict = {}
    transitions = []  # (row after the event, status before) in log order
    for ev in records:
        if isinstance(ev, TaskEvent):
            old = rows.get(ev.execution_id)
            new = merge_event(old, ev)
            rows[ev.execution_id] = new
            transitions.append((new, None if old is None else old.status))
    return rows, transitions


def _identity(config):
    """The node's own identity if it has one (so ids are exactly those it would send), else a throwaway."""
    from ..identity import KEY_FILE, load_identity

    if (config.data_dir / KEY_FILE).exists():
        return load_identity(config.data_dir, config.node_id), True
    with tempfile.TemporaryDirectory(prefix="monitor-agent-parse-") as tmp:
        return load_identity(tmp, config.node_id), False


def _shared(config, transitions: list) -> tuple[list[str], int]:
    from .. import anonymizer, privacy_gate

    identity, real = _identity(config)
    if not real:
        click.echo(
            f"# no node key in {config.data_dir} yet: nodeId and taskIds below come from a throwaway key",
            err=True,
        )
    out, blocked = [], 0
    for task, before in transitions:
        if task.status == before or task.status not in BROADCAST_STATUSES:
            continue
        message = anonymizer.task_message(
            task, node_id=identity.node_id, task_id=identity.task_id, privacy=config.privacy
        )
        if message is None:
            continue
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        finding = privacy_gate.check(message)
        found = str(finding) if finding else privacy_gate.check_payload(payload.encode())
        if found:
            blocked += 1
            out.append(f"# BLOCKED by the privacy gate (FED_003: {found}), would not be sent")
            continue
        out.append(payload)
    return out, blocked


def _fmt(value) -> str:
    return "-" if value is None else str(value)


@click.command("parse")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--shared", is_flag=True, help="Print exactly the federation messages these logs would send.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task (the local view).")
@click.option("--private", is_flag=True, help="With --json: include private fields (never shared).")
def command(files: tuple[Path, ...], shared: bool, as_json: bool, private: bool) -> None:
    """Show what the agent extracts from TrueBit node log FILES (.log or .log.gz, read in the order given)
    or folders (every .log and rotated .log.gz in them, oldest first, as the agent reads a folder).

    \b
    Default: one line per task (status, chain, block, type, execution time, exit code), then
    the counts of what was read. With --shared: the task messages the agent would publish,
    byte for byte, after anonymization and the privacy gate — audit them before setting
    ENABLE_FEDERATION=true. They are what the agent sends when such events happen while
    federation is on: history already in the logs when you opt in is never sent. Privacy settings (FEDERATION_PRIVACY, DATA_DIR's node key) are
    taken from the environment, as the agent would.

    \b
    Examples:
      monitor-agent parse /var/log/truebit/                       # the whole folder, .gz included
      monitor-agent parse /var/log/truebit/debug-2024-01-15.log.gz debug-2024-01-16.log
      FEDERATION_PRIVACY=strict monitor-agent parse --shared node.log
    """
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"monitor-agent: {exc}", err=True)
        sys.exit(2)
    paths: list[Path] = []
    for p in files:
        if p.is_dir():
            found = [f.path for f in list_log_files(p)]
            if not found:
                raise click.ClickException(f"{p}: no .log or .log.gz files in this folder")
            paths += found
        else:
            paths.append(p)
    files = tuple(paths)
    total = sum(p.stat().st_size for p in files)
    if total > 16 * CHUNK and sys.stderr.isatty():  # big folders take a few seconds: show progress
        with click.progressbar(length=total, label="parsing", file=sys.stderr) as bar:
            records, parser = parse_files(list(files), progress=bar.update)
    else:
        records, parser = parse_files(list(files))
    rows, transitions = _tasks(records)
    if shared:
        try:
            lines, blocked = _shared(config, transitions)
        except AgentError as exc:
            raise click.ClickException(str(exc)) from exc
        for line in lines:
            click.echo(line)
        click.echo(
            f"# {len(lines) - blocked} message(s) as the agent sends them for such events with federation on, "
            f"{blocked} blocked; these are history: events already logged when you opt in are never sent",
            err=True,
        )
        return
    if as_json:
        import msgspec

        from ..web.serializers import local_task

        for t in rows.values():
            row = local_task(t, include_private=True)  # the operator's own terminal: execution ids shown
            if not private:
                row = msgspec.structs.replace(row, private=msgspec.UNSET)
            click.echo(json.dumps(msgspec.to_builtins(row), default=str))
    else:
        click.echo(
            f"{'execution id':36}  {'status':9} {'chain':>6} {'block':>9} {'type':5} {'ms':>7} {'exit':>4}"
        )
        for t in rows.values():
            click.echo(
                f"{t.execution_id[:36]:36}  {t.status:9} {_fmt(t.chain_id):>6} {_fmt(t.block_number):>9} "
                f"{_fmt(t.task_type):5} {_fmt(t.execution_time_ms):>7} {_fmt(t.exit_code):>4}"
            )
    st = parser.stats
    statuses = [t.status for t in rows.values()]
    click.echo(
        f"# {st.lines} lines, {st.entries} entries: {len(rows)} tasks ({statuses.count('completed')} completed, "
        f"{statuses.count('failed')} failed, {len(rows) - statuses.count('completed') - statuses.count('failed')} "
        f"other), {st.invoices} invoices, {st.slot_usages} slot changes, {st.raw_entries} other entries, "
        f"{st.invalid_json} with invalid JSON, {st.truncated} cut at the size limits",
        err=True,
    )
