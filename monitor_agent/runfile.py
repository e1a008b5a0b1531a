"""`DATA_DIR/agent.json`: which process serves the agent of this DATA_DIR, and on which port.

The serving worker writes it (0600) once its app is built and removes it when it stops.
Commands that talk to "their" agent (`clear-federation-data`) read it instead of trusting
MONITOR_PORT, and before they send the API token they check that the recorded process
really holds the listening socket of that port (Linux /proc): a stale file, a reused pid or
another program on the port is never sent the token.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .files import write_private

RUN_FILE = "agent.json"


def path(data_dir: Path) -> Path:
    return Path(data_dir) / RUN_FILE


def write(data_dir: Path, host: str, port: int, pid: int | None = None) -> Path:
    """Record `pid` (default: this process) as the agent of `data_dir`, serving host:port."""
    target = path(data_dir)
    write_private(target, json.dumps({"pid": pid or os.getpid(), "host": host, "port": port}))
    return target


def remove(data_dir: Path, pid: int | None = None) -> None:
    """Delete the file if it still names `pid` (default: this process)."""
    info = read(data_dir)
    if info is not None and info["pid"] == (pid or os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            path(data_dir).unlink()


def read(data_dir: Path) -> dict | None:
    """{"pid", "host", "port"} or None when absent or unreadable."""
    try:
        data = json.loads(path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("pid"), int)
        or not isinstance(data.get("port"), int)
        or not isinstance(data.get("host"), str)
    ):
        return None
    return data


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours
        return True
    return True


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP `port` (any address); None when /proc cannot tell."""
    inodes: set[str] = set()
    seen = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":  # 0A: LISTEN
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes if seen else None


def holds_listener(pid: int, port: int) -> bool:
    """True only if process `pid` has the socket listening on TCP `port` open."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{i}]" for i in inodes}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
    return False
