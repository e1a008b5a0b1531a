"""The one atomic private write of both packages: token, run file, settings, seed secrets, deploy vars."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Atomically write `text` to `path` with mode 0600 (never world-readable, even briefly).

    A fresh temp file (mkstemp: O_EXCL, 0600) beside the target, fsync, then rename over it:
    readers see the old file or the whole new one, and a crash leaves no half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
