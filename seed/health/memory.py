"""The figures of the previous run, kept in a small JSON file so that `seedctl health` from cron
can tell 'slow consumers rising' or 'restarted since last time' like the console does."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = ".health-last.json"  # a dot name cannot clash with a server's state directory


def default_path(spec) -> Path:
    return Path(spec.state_dir) / FILE_NAME


def load(path: Path | None) -> dict[str, dict]:
    """{server name: counters}; an absent or damaged file is simply no memory."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable health memory %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def save(path: Path | None, memory: dict[str, dict]) -> None:
    """Write atomically; failing to remember must not fail the health check."""
    if path is None:
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".health-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(memory, fh, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot save health memory to %s: %s", path, exc)
