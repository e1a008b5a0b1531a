"""The first ten minutes, played by the book: docs/quickstart.md run as written, then both nodes work.

    python tests/docs/first_ten_minutes.py [SANDBOX]     # prints the figures as JSON

One seed operator and two node operators (A open, B enrolled) follow docs/quickstart.md on this
machine (tests/docs/mdrun.py runs its shell blocks in a fresh sandbox: nothing set up beforehand
but this installed repository). Then each node "works": a task lifecycle is appended to its
debug log, as the TrueBit node writes it. Done when each agent holds the other's task, received
through the seed. Figures: seconds from the bare sandbox to that moment, and the manual edits the
page needed (steps that are not commands: `<!-- docs-test: manual-edit -->` markers; target 0).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.docs import mdrun  # noqa: E402
from tests.ingest.nodelog import task_text  # noqa: E402
from tests.plugins.tools import http_get

DOC = mdrun.ROOT / "docs" / "quickstart.md"


def manual_edits(doc: Path = DOC) -> int:
    return doc.read_text(encoding="utf-8").count("docs-test: manual-edit")


def _get(port: int, path: str) -> dict:
    return http_get(f"http://127.0.0.1:{port}{path}", timeout=5, trust_env=False).json()


def _holds(port: int, node_id: str) -> bool:
    rows = _get(port, "/api/federation/tasks/global?limit=100")
    return any(r.get("sourceNode") == node_id for r in rows.get("tasks", []))


def play(sandbox: Path, timeout: float = 120.0) -> tuple[dict, mdrun.Run]:
    """Run the page and the nodes' work; returns (figures, the run: stop() it when done)."""
    started = time.monotonic()
    logs = {name: sandbox.parent / f"{sandbox.name}-logs" / name for name in ("a", "b")}
    for folder in logs.values():
        folder.mkdir(parents=True)
    run = mdrun.run(DOC, sandbox, placeholders={f"/path/to/node-{n}/logs": str(p) for n, p in logs.items()})
    figures = {"doc": "docs/quickstart.md", "docReturncode": run.returncode, "docSeconds": round(run.elapsed_s, 1),
               "blocksRun": run.blocks_run, "blocksSkipped": len(run.blocks_skipped),
               "manualEdits": manual_edits()}  # fmt: skip
    if run.returncode != 0:
        figures["output"] = run.output[-4000:]
        return figures, run
    ports = {"a": run.port(8091), "b": run.port(8092)}
    ids = {n: _get(p, "/api/federation/status")["nodeId"] for n, p in ports.items()}
    states = {n: _get(p, "/api/federation/status")["state"] for n, p in ports.items()}
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for name, folder in logs.items():  # each node works: one task, as the node logs it
        (folder / f"debug-{day}.log").write_text(task_text(str(uuid.uuid4())))
    deadline = time.monotonic() + timeout
    exchanged = False
    while time.monotonic() < deadline:
        if _holds(ports["a"], ids["b"]) and _holds(ports["b"], ids["a"]):
            exchanged = True
            break
        time.sleep(0.2)
    figures.update(
        exchanged=exchanged,
        secondsToExchange=round(time.monotonic() - started, 1),
        states=states,
        nodeIds=ids,
    )
    return figures, run


def main() -> int:
    sandbox = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="first-ten-")) / "machine"
    )
    figures, run = play(sandbox)
    try:
        print(json.dumps(figures, indent=2))
    finally:
        run.stop()
    return 0 if figures.get("exchanged") else 1


if __name__ == "__main__":
    sys.exit(main())
