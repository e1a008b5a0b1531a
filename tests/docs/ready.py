"""`python -m tests.docs.ready LOG PID`: wait until the server writing LOG answers its first URL.

Used by tests/docs/mdrun.py for documented servers run in the background. Exit 1 (with the log's
tail) if the process exits first or nothing answers within 60 s.
"""

from __future__ import annotations

import os
import re
import sys
import time

import httpx

URL_RE = re.compile(r"https?://[0-9A-Za-z.\[\]:-]+:\d+")


def main(log: str, pid: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        try:
            text = open(log, encoding="utf-8", errors="replace").read()
        except FileNotFoundError:
            text = ""
        m = URL_RE.search(text)
        if m:
            url = m.group(0).replace("0.0.0.0", "127.0.0.1")
            try:
                httpx.get(url + "/", timeout=1.0, trust_env=False)
                return 0
            except httpx.HTTPError:
                pass
        if not alive:
            break
        time.sleep(0.1)
    sys.stderr.write(f"docs-test: the server of {log} did not come up:\n{text[-2000:]}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
